"""``tfesi federate``: several clinics train one model together without sharing images (issue 24,
item 4), on Flower (``flwr``).

One **coordinator** and one **client per clinic**, each a separate process; a client reads only
its own manifest. What travels, and only that (:data:`ALLOWED`; the coordinator logs every
message's arrays and keys, and the tests check them):

1. *training rounds* (FedAvg, weighted by each site's training patients): the network's weights
   down, the locally trained weights up (the compact network of :mod:`.network`, trained at the
   site with :func:`.train.fit_and_evaluate`, its augmentation and Adam recipe, for a few local
   epochs a round), with the site's held-out AUC and loss as scalars;
2. *distribution moments*: per site, the count, sum and sum of outer products of the pooled
   features and of the input intensity histograms of its training patients' ROI sets (the
   probabilistic PCA of :mod:`..ood` is a function of those moments);
3. *distribution distances*: the fitted distribution down, per site a histogram of its
   patients' distances up (the thresholds are pooled 99th percentiles, as in :mod:`..ood`);
4. *calibration*: Platt scaling fitted across sites by Newton's method on the summed gradient
   and Hessian of the log loss (5 numbers per site and iteration): the same optimum as
   :func:`..stats.fit_platt` on all sites' held-out patients pooled, without pooling them.
   Logistic regression has no finite sufficient statistics, so sending a few statistics once
   would approximate it; the gradient rounds are exact and reveal only sums;
5. *evaluation*: per site, the counts of favourable and poor held-out patients per calibrated
   probability bin (100 bins: whole percent, what the program shows), from which the
   coordinator computes the pooled AUC with its DeLong CI and the calibration summary, and the
   number of held-out patients the distribution check flags.

Images, per-patient outcomes and identifiers never travel. The coordinator then writes a normal
model bundle (LiteRT export, calibration, ``ood.npz``) whose card lists the sites and the patient
counts per site, and a run log (rounds, AUC per round and site, bytes each way per client).

The client's ROI-set logits and features come from the Keras network, not the LiteRT export
(a client does not export); the card records the export's largest logit difference from Keras.

Transport: Flower's gRPC API ``flwr.server.start_server`` / ``flwr.client.start_client`` (the
one that runs a coordinator and clients as plain processes without a SuperLink; deprecated in
Flower since 1.13 in favour of ``flower-superlink``/``flower-supernode`` deployments, still in
1.42). Flower's telemetry is switched off before Flower is imported: nothing leaves the
participants' machines but these messages.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import TfesiError
from ..preprocess import TTA_CROPS
from ..runtime import NEIGHBOUR_CROPS

PROB_BINS = 100  # evaluation histograms: whole percent
DIST_BINS, DIST_LOG = 2000, (-3.0, 6.0)  # distance histograms: log10 range
NEWTON_STEPS = 10
PLATT_BOUNDS = ((-12.0, 5.0), (-20.0, 20.0))  # log(1/T) and b, as stats.fit_platt
TASKS = ("train", "moments", "distances", "platt", "evaluate")
ACQUISITION_KEYS = ("pixel_mm", "slice_thickness_mm", "field_strength_t")


def _flower():
    """Import Flower with its telemetry off (it would otherwise report each start to a web
    service)."""
    import warnings

    os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
    with warnings.catch_warnings():  # its command-line dependencies warn about click 9
        warnings.simplefilter("ignore", DeprecationWarning)
        import flwr
        import flwr.client
        import flwr.server

    return flwr


def schedule(rounds: int) -> list[str]:
    """The task of each Flower round (1-based round = index + 1)."""
    return (["train"] * rounds + ["moments", "distances"] + ["platt"] * NEWTON_STEPS
            + ["evaluate"])


# --- statistics the sites send, and what the coordinator makes of them ------------------------

def moments(x: np.ndarray) -> list[np.ndarray]:
    """[n, sum (d,), sum of outer products (d, d)] of rows x (n, d), float64."""
    x = np.asarray(x, np.float64)
    return [np.array([len(x)], np.float64), x.sum(0), x.T @ x]


def ppca_from_moments(n: float, s1: np.ndarray, s2: np.ndarray, *, k: int):
    """The probabilistic PCA of :func:`..ood.fit` from pooled moments (threshold 1, set later).
    The eigenvalues of the scatter matrix are the squared singular values ``ood.fit`` uses."""
    from ..ood import FeatureDistribution

    mean = s1 / n
    scatter = s2 - n * np.outer(mean, mean)
    lam, vec = np.linalg.eigh((scatter + scatter.T) / 2)
    order = np.argsort(lam)[::-1]
    lam, vec = np.maximum(lam[order], 0.0), vec[:, order]
    dim = len(mean)
    k = int(min(k, min(int(n), dim) - 1, dim - 1))
    var = lam / max(n - 1, 1)
    total = float(var.sum())
    floor = 1e-6 * max(total, 1e-12) / dim
    resid = max((total - float(var[:k].sum())) / (dim - k), floor)
    return FeatureDistribution(mean, vec[:, :k].T, np.maximum(var[:k], floor), resid, 1.0)


def distance_histogram(d: np.ndarray) -> np.ndarray:
    """Counts of distances in :data:`DIST_BINS` log-spaced bins from 10^-3 to 10^6 (each about
    1 % wide)."""
    x = np.log10(np.maximum(np.asarray(d, np.float64), 1e-12))
    idx = np.clip(((x - DIST_LOG[0]) / (DIST_LOG[1] - DIST_LOG[0]) * DIST_BINS).astype(int),
                  0, DIST_BINS - 1)
    return np.bincount(idx, minlength=DIST_BINS).astype(np.float64)


def percentile_from_histogram(counts: np.ndarray, q: float) -> float:
    """The ``q``-th percentile of distances binned by :func:`distance_histogram` (the upper
    edge of the bin where the cumulative share reaches q: at most 1 % above the exact one)."""
    c = np.cumsum(counts)
    i = min(int(np.searchsorted(c, q / 100 * c[-1])), DIST_BINS - 1)
    return float(10 ** (DIST_LOG[0] + (i + 1) * (DIST_LOG[1] - DIST_LOG[0]) / DIST_BINS))


def platt_terms(theta: np.ndarray, z: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """[gradient (2,), Hessian (2, 2), [log-loss sum]] of sum log loss of sigmoid(w z + b) with
    respect to (w, b) at theta = (w, b)."""
    from ..runtime import sigmoid

    x = np.stack([np.asarray(z, np.float64), np.ones(len(z))], 1)
    q = x @ theta
    p = sigmoid(q)
    loss = float(np.sum(np.logaddexp(0, q) - y * q))
    return [x.T @ (p - y), (x * (p * (1 - p))[:, None]).T @ x, np.array([loss])]


def platt_update(theta, grad, hess, loss, state):
    """One round of damped Newton: (next theta to evaluate, state). ``state`` holds the last
    accepted point, its loss and the step taken from it."""
    if state is not None and loss > state["loss"] + 1e-9 * max(abs(state["loss"]), 1):
        step = state["step"] / 2  # the loss rose: back off towards the accepted point
        return _bounded(state["theta"] - step), {**state, "step": step}
    step = np.linalg.solve(hess + 1e-9 * np.eye(2), grad)
    return _bounded(theta - step), {"theta": theta, "loss": loss, "step": step}


def _bounded(theta):
    lo, hi = (math.exp(v) for v in PLATT_BOUNDS[0])
    return np.array([min(max(theta[0], lo), hi),
                     min(max(theta[1], PLATT_BOUNDS[1][0]), PLATT_BOUNDS[1][1])])


def probability_histograms(p: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """[favourable counts (100,), poor counts (100,)] per whole-percent probability bin."""
    idx = np.clip((np.asarray(p) * PROB_BINS).astype(int), 0, PROB_BINS - 1)
    y = np.asarray(y).astype(bool)
    return [np.bincount(idx[y], minlength=PROB_BINS).astype(np.float64),
            np.bincount(idx[~y], minlength=PROB_BINS).astype(np.float64)]


def pooled_metrics(favourable: np.ndarray, poor: np.ndarray) -> dict:
    """AUC with DeLong CI, accuracy at 0.5 and the calibration summary of the pooled held-out
    patients, from the per-bin counts (each bin scored at its centre: whole percent)."""
    from ..model_gate import probability_spread
    from ..stats import calibration_summary
    from .train import binary_metrics

    centres = (np.arange(PROB_BINS) + 0.5) / PROB_BINS
    fav, poor = np.asarray(favourable, int), np.asarray(poor, int)
    p = np.concatenate([np.repeat(centres, fav), np.repeat(centres, poor)])
    y = np.concatenate([np.ones(fav.sum(), int), np.zeros(poor.sum(), int)])
    out = binary_metrics(y, p)
    out["calibration"] = calibration_summary(y, p)
    out["calibration"]["probability_spread"] = round(probability_spread(p), 4)
    return out


# --- the client (one per clinic) --------------------------------------------------------------

@dataclass
class Site:
    """One clinic's data, read from its own manifest only, and what it keeps between rounds."""

    name: str
    manifest: Path
    regions: list
    y: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray
    synthetic: bool
    seed: int = 0
    cache: dict = field(default_factory=dict)
    cases: list = field(default_factory=list)

    def acquisition_range(self) -> dict:
        """Min and max of pixel size, slice thickness and field strength over the site's
        patients (scalars for the card's training range, :mod:`..site_check`)."""
        from ..site_check import acquisition

        out = {}
        rows = [acquisition(c) for c in self.cases]
        for k in ACQUISITION_KEYS:
            vals = [r[k] for r in rows if r.get(k) is not None]
            if vals:
                out[f"{k}_min"], out[f"{k}_max"] = float(min(vals)), float(max(vals))
        return out

    @classmethod
    def load(cls, name: str, manifest: str | Path, *, validation_fraction: float = 0.2,
             seed: int = 0) -> Site:
        from ..manifest import load_regions
        from .train import split

        manifest = Path(manifest)
        regions, y, cases = load_regions(manifest)
        tr, va = split(y, validation_fraction, seed)
        if len(set(y[va])) < 2 or len(set(y[tr])) < 2:
            raise TfesiError(f"Site {name}: too few patients of one outcome for a held-out "
                             "part with both outcomes.", manifest)
        return cls(name, manifest, regions, y, tr, va,
                   (manifest.parent / "cohort.json").exists(), seed, cases=cases)


class _KerasScorer:
    """What :func:`.train.ensemble_scores` needs of a predictor, from the Keras network. The
    sites score the chosen slice alone: the federated card carries no slice rule (``tta.slices``),
    so the program keeps its results on the chosen slice ("chosen", runtime.py) and calibration
    must be fitted there too."""

    crops = TTA_CROPS
    slice_offsets = (0,)
    slice_rule = "chosen"
    neighbour_crops = NEIGHBOUR_CROPS

    def __init__(self, model):
        from .network import feature_and_logit_model

        self._two = feature_and_logit_model(model)

    def infer_batch(self, images):
        out = self._two(np.asarray(images, np.float32), training=False)
        return np.asarray(out["features"]), np.asarray(out["logit"]).reshape(-1)


def _model_with(weights, seed: int):
    from .network import COMPACT, build_model

    model, _ = build_model(COMPACT, init="random", seed=seed)
    model.set_weights(weights)
    return model


def client_step(site: Site, arrays: list[np.ndarray], config: dict
                ) -> tuple[list[np.ndarray], int, dict]:
    """One Flower fit call at a site: (arrays up, number of examples, scalar metrics)."""
    task = str(config["task"])
    if task == "train":
        from .network import save_weights_only_model
        from .train import TrainConfig, fit_and_evaluate

        rnd = int(config["round"])
        with tempfile.TemporaryDirectory(prefix="tfesi-federate-") as tmp:
            start = Path(tmp) / "global.keras"
            save_weights_only_model(_model_with(arrays, site.seed), start)
            cfg = TrainConfig(variant="compact", epochs=int(config["local_epochs"]),
                              batch_size=int(config["batch_size"]),
                              learning_rate=float(config["learning_rate"]), optimizer="adam",
                              seed=site.seed + 1000 * rnd, init="random",
                              init_from=str(start))
            model, record = fit_and_evaluate(site.regions, site.y, cfg,
                                             train_idx=site.train_idx, val_idx=site.val_idx)
        val = record["metrics"]["validation_keras"]
        return ([np.asarray(w) for w in model.get_weights()], len(site.train_idx),
                {"site": site.name, "auc": float(val["auc"]),
                 "loss": float(record["history"]["loss"][-1])})
    if task == "moments":
        from .train import ensemble_scores

        scorer = _KerasScorer(_model_with(arrays, site.seed))
        z_va, f_va, h_va = ensemble_scores(scorer, [site.regions[i] for i in site.val_idx])
        _, f_tr, h_tr = ensemble_scores(scorer, [site.regions[i] for i in site.train_idx])
        site.cache.update(z_va=z_va, f_va=f_va, h_va=h_va, f_tr=f_tr, h_tr=h_tr)
        return ([*moments(f_tr), *moments(h_tr)], len(site.train_idx),
                {"site": site.name, "train": len(site.train_idx),
                 "validation": len(site.val_idx), "synthetic": site.synthetic,
                 **site.acquisition_range()})
    c = site.cache
    if task == "distances":
        from ..ood import FeatureDistribution

        feats, hists = (FeatureDistribution(a[0], a[1], a[2], float(a[3][0]), 1.0)
                        for a in (arrays[0:4], arrays[4:8]))
        return ([distance_histogram(feats.distance(c["f_tr"])),
                 distance_histogram(feats.distance(c["f_va"])),
                 distance_histogram(hists.distance(c["h_tr"])),
                 distance_histogram(hists.distance(c["h_va"]))],
                len(site.train_idx), {"site": site.name})
    yv = site.y[site.val_idx].astype(np.float64)
    if task == "platt":
        return platt_terms(arrays[0], c["z_va"], yv), len(yv), {"site": site.name}
    if task == "evaluate":
        from ..ood import TrainingDistribution
        from ..runtime import sigmoid

        temperature, intercept = arrays[0]
        p = sigmoid(c["z_va"] / temperature + intercept)
        dist = TrainingDistribution(_dist_from(arrays[1:6]), _dist_from(arrays[6:11]))
        flagged = sum(dist.distance(f, h) > dist.threshold
                      for f, h in zip(c["f_va"], c["h_va"], strict=True))
        return probability_histograms(p, yv), len(yv), {"site": site.name,
                                                        "flagged": int(flagged)}
    raise TfesiError(f"The coordinator asked for an unknown task {task!r}.")


def _dist_from(a):
    from ..ood import FeatureDistribution

    return FeatureDistribution(a[0], a[1], a[2], float(a[3][0]), float(a[4][0]))


def run_client(site: Site, address: str, *, max_wait_s: float = 300.0) -> None:
    """Connect to the coordinator and answer its rounds until it ends the run."""
    fl = _flower()

    class Client(fl.client.NumPyClient):
        def get_parameters(self, config):
            return []

        def fit(self, parameters, config):
            return client_step(site, list(parameters), dict(config))

    _wait_for_port(address, max_wait_s)
    import grpc

    try:
        fl.client.start_client(server_address=address, client=Client().to_client(),
                               insecure=True, max_wait_time=max_wait_s)
    except grpc.RpcError as e:
        raise TfesiError(f"The connection to the coordinator at {address} was lost "
                         f"({e.code().name}).") from None


def _wait_for_port(address: str, seconds: float) -> None:
    """Until the coordinator accepts connections (it may still be starting)."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TfesiError(f"No coordinator answers at {address} (waited "
                                 f"{seconds:.0f} s).") from None
            time.sleep(0.5)


# --- the coordinator --------------------------------------------------------------------------

@dataclass
class FederatedConfig:
    sites: int = 3
    rounds: int = 5
    local_epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 1e-3  # per round decayed along a cosine to 10 % by the last round
    seed: int = 0
    init_from: str | None = None  # a bundle folder or .keras file to start from
    round_timeout_s: float = 600.0

    def round_learning_rate(self, rnd: int) -> float:
        frac = (rnd - 1) / max(self.rounds - 1, 1)
        return self.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def _nbytes(parameters) -> int:
    return int(sum(len(t) for t in parameters.tensors))


class Coordinator:
    """The server-side logic (Flower-independent): what each round sends, and what it makes of
    the answers. :meth:`strategy` wraps it in a Flower strategy."""

    def __init__(self, cfg: FederatedConfig, initial: list[np.ndarray], weight_shapes):
        self.cfg = cfg
        self.tasks = schedule(cfg.rounds)
        self.weights = initial
        self.weight_shapes = [tuple(s) for s in weight_shapes]
        self.theta = np.array([1.0, 0.0])
        self.platt_state: dict | None = None
        self.dist_arrays: list[np.ndarray] = []
        self.features = self.intensities = None
        self.thresholds = (1.0, 1.0)
        self.sites: dict[str, dict] = {}
        self.acquisition: list[dict] = []  # per site: min/max of the acquisition parameters
        self.log: list[dict] = []  # one entry per round: task, per site metrics and bytes
        self.messages: list[dict] = []  # every message received: site, task, shapes, keys
        self.payloads: list[bytes] = []  # raw bytes received (kept only when asked: tests)
        self.keep_payloads = False
        self.result: dict = {}
        self.error: str | None = None

    def task(self, rnd: int) -> str:
        return self.tasks[rnd - 1]

    def instructions(self, rnd: int) -> tuple[list[np.ndarray], dict]:
        task = self.task(rnd)
        config = {"task": task, "round": rnd}
        if task == "train":
            config |= {"local_epochs": self.cfg.local_epochs, "batch_size": self.cfg.batch_size,
                       "learning_rate": self.cfg.round_learning_rate(rnd)}
            return self.weights, config
        if task == "moments":
            return self.weights, config
        if task == "distances":
            return self.dist_arrays[:4] + self.dist_arrays[5:9], config
        if task == "platt":
            return [self.theta], config
        w, b = self.platt_state["theta"]  # the best point whose loss was measured
        return [np.array([1 / w, b]), *self._threshold_arrays()], config

    def _threshold_arrays(self):
        out = []
        for d, thr in ((self.features, self.thresholds[0]),
                       (self.intensities, self.thresholds[1])):
            out += [d.mean, d.components, d.variances, np.array([d.residual_variance]),
                    np.array([thr])]
        return out

    def receive(self, rnd: int, answers: list[tuple[list[np.ndarray], int, dict, int, int]]):
        """``answers``: per site (arrays, examples, metrics, bytes received, bytes sent)."""
        task = self.task(rnd)
        entry = {"round": rnd, "task": task, "sites": {}}
        for arrays, n, metrics, got, sent in answers:
            self._check_message(task, arrays, metrics)
            entry["sites"][str(metrics["site"])] = {
                "bytes_from_site": got, "bytes_to_site": sent, "examples": n,
                **{k: v for k, v in metrics.items() if k != "site"}}
        getattr(self, "_" + task)(answers)
        if task == "train":
            aucs = [(a[2]["auc"], a[1]) for a in answers]
            entry["weighted_site_auc"] = round(sum(a * n for a, n in aucs)
                                               / sum(n for _, n in aucs), 4)
        self.log.append(entry)

    def _check_message(self, task: str, arrays, metrics) -> None:
        """Refuse anything but the statistics this module defines (module docstring)."""
        shapes = [tuple(np.shape(a)) for a in arrays]
        allowed = ALLOWED[task](self)
        if shapes != allowed:
            raise TfesiError(f"A site sent arrays of shapes {shapes} for the {task} round; "
                             f"only {allowed} are expected. The run is stopped.")
        extra = set(metrics) - set(METRIC_KEYS[task])
        if extra or not all(isinstance(v, (int, float, str, bool)) for v in metrics.values()):
            raise TfesiError(f"A site sent unexpected values ({sorted(extra)}) for the {task} "
                             "round. The run is stopped.")
        self.messages.append({"task": task, "site": str(metrics.get("site")),
                              "shapes": shapes, "keys": sorted(metrics)})

    def _train(self, answers):
        total = sum(n for _, n, *_ in answers)
        self.weights = [sum(a[0][i] * (a[1] / total) for a in answers).astype(np.float32)
                        for i in range(len(self.weight_shapes))]

    def _moments(self, answers):
        for _, _, m, *_ in answers:
            self.sites[str(m["site"])] = {"patients": int(m["train"]) + int(m["validation"]),
                                          "train": int(m["train"]),
                                          "validation": int(m["validation"]),
                                          "synthetic": bool(m["synthetic"])}
            self.acquisition.append({k: float(v) for k, v in m.items()
                                     if k.endswith(("_min", "_max"))})
        from ..ood import COMPONENTS, HISTOGRAM_COMPONENTS

        s = [sum(a[0][i] for a in answers) for i in range(6)]
        self.features = ppca_from_moments(float(s[0][0]), s[1], s[2], k=COMPONENTS)
        self.intensities = ppca_from_moments(float(s[3][0]), s[4], s[5],
                                             k=HISTOGRAM_COMPONENTS)
        self.dist_arrays = []
        for d in (self.features, self.intensities):
            self.dist_arrays += [d.mean, d.components, d.variances,
                                 np.array([d.residual_variance]), np.array([1.0])]

    def _distances(self, answers):
        from ..ood import PERCENTILE

        h = [sum(a[0][i] for a in answers) for i in range(4)]
        self.thresholds = (
            max(percentile_from_histogram(h[0], PERCENTILE),
                percentile_from_histogram(h[1], PERCENTILE)),
            max(percentile_from_histogram(h[2], PERCENTILE),
                percentile_from_histogram(h[3], PERCENTILE)))

    def _platt(self, answers):
        """Damped Newton across rounds: the sites return the loss, gradient and Hessian at the
        proposed (w, b); a step that raised the loss is halved from the last accepted point."""
        grad = sum(a[0][0] for a in answers)
        hess = sum(a[0][1] for a in answers)
        loss = float(sum(a[0][2][0] for a in answers))
        self.theta, self.platt_state = platt_update(self.theta, grad, hess, loss,
                                                    self.platt_state)

    def _evaluate(self, answers):
        fav = sum(a[0][0] for a in answers)
        poor = sum(a[0][1] for a in answers)
        val = pooled_metrics(fav, poor)
        flagged = sum(int(a[2]["flagged"]) for a in answers)
        val["flagged_validation"] = round(flagged / max(val["n"], 1), 4)
        w, b = self.platt_state["theta"]
        self.result = {"validation": val, "temperature": float(1 / w), "intercept": float(b)}

    def strategy(self):
        fl = _flower()
        from flwr.common import FitIns, ndarrays_to_parameters, parameters_to_ndarrays

        coord = self
        n_sites = self.cfg.sites

        class Strategy(fl.server.strategy.FedAvg):
            def initialize_parameters(self, client_manager):
                return ndarrays_to_parameters(coord.weights)

            def configure_fit(self, server_round, parameters, client_manager):
                if coord.error:
                    return []
                clients = client_manager.sample(num_clients=n_sites, min_num_clients=n_sites)
                arrays, config = coord.instructions(server_round)
                ins = FitIns(ndarrays_to_parameters(arrays), config)
                coord._sent = _nbytes(ins.parameters) + len(repr(config))
                return [(c, ins) for c in clients]

            def aggregate_fit(self, server_round, results, failures):
                if coord.error:
                    return None, {}
                if failures or len(results) != n_sites:
                    coord.error = (f"round {server_round}: {len(results)} of {n_sites} sites "
                                   f"answered ({len(failures)} failures)")
                    return None, {}
                answers = []
                for _, res in results:
                    if coord.keep_payloads:
                        coord.payloads.append(b"".join(res.parameters.tensors))
                    answers.append((parameters_to_ndarrays(res.parameters), res.num_examples,
                                    dict(res.metrics),
                                    _nbytes(res.parameters) + len(repr(res.metrics)),
                                    coord._sent))
                try:
                    coord.receive(server_round, answers)
                except TfesiError as e:
                    coord.error = e.message
                return None, {}

            def configure_evaluate(self, server_round, parameters, client_manager):
                return []

            def evaluate(self, server_round, parameters):
                return None

        return Strategy(min_fit_clients=n_sites, min_available_clients=n_sites,
                        fraction_evaluate=0.0)


METRIC_KEYS = {"train": ("site", "auc", "loss"),
               "moments": ("site", "train", "validation", "synthetic",
                           *(f"{k}_{e}" for k in ("pixel_mm", "slice_thickness_mm",
                                                  "field_strength_t") for e in ("min", "max"))),
               "distances": ("site",), "platt": ("site",), "evaluate": ("site", "flagged")}


def _weights_shapes(c: Coordinator):
    return c.weight_shapes


def _moment_shapes(c: Coordinator):
    f, h = c.features_dim, c.hist_dim
    return [(1,), (f,), (f, f), (1,), (h,), (h, h)]


# the arrays a site may send per task, as shapes: weights of the network, or statistics
ALLOWED = {"train": _weights_shapes, "moments": _moment_shapes,
           "distances": lambda c: [(DIST_BINS,)] * 4,
           "platt": lambda c: [(2,), (2, 2), (1,)],
           "evaluate": lambda c: [(PROB_BINS,)] * 2}


def _initial_model(cfg: FederatedConfig):
    from ..bundle import KERAS_FILE
    from .network import COMPACT, FEATURE_LAYER, build_model

    init = cfg.init_from
    if init and Path(init).is_dir():
        init = str(Path(init) / KERAS_FILE)
    model, info = build_model(COMPACT, init="random", seed=cfg.seed, init_from=init)
    return model, info, int(model.get_layer(FEATURE_LAYER).output.shape[-1])


def run_coordinator(cfg: FederatedConfig, out: str | Path, *, address: str, name: str,
                    version: str = "1.0.0", log_file: str | Path | None = None,
                    overwrite: bool = False, keep_payloads: bool = False,
                    progress=None) -> dict:
    """Run every round with ``cfg.sites`` clients, then write the bundle and the run log."""
    from ..ood import HISTOGRAM_BINS

    say = progress or (lambda m: None)
    out = Path(out)
    if out.exists() and not overwrite:
        raise TfesiError("This bundle folder exists; choose another or add --force.", out)
    model, info, feat_dim = _initial_model(cfg)
    coord = Coordinator(cfg, [np.asarray(w) for w in model.get_weights()],
                        [w.shape for w in model.get_weights()])
    coord.features_dim, coord.hist_dim = feat_dim, HISTOGRAM_BINS
    coord.keep_payloads = keep_payloads
    fl = _flower()
    t0 = time.monotonic()
    say(f"coordinator on {address}: waiting for {cfg.sites} sites, "
        f"{len(coord.tasks)} rounds ({cfg.rounds} training)")
    import signal

    # Flower installs its own exit handlers (it must run in the main thread); keep ours after
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)}
    try:
        fl.server.start_server(server_address=address, strategy=coord.strategy(),
                               config=fl.server.ServerConfig(num_rounds=len(coord.tasks),
                                                             round_timeout=cfg.round_timeout_s))
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
    seconds = time.monotonic() - t0
    if coord.error or not coord.result:
        raise TfesiError("The federated run did not finish: "
                         f"{coord.error or 'not every round was answered'}.")
    model.set_weights(coord.weights)
    card = write_federated_bundle(model, info, coord, out, name=name, version=version,
                                  seconds=seconds)
    run_log = {"config": cfg.__dict__, "seconds": round(seconds, 1), "sites": coord.sites,
               "rounds": coord.log, "messages": coord.messages,
               "validation": card["metrics"]["validation"]}
    log_file = Path(log_file) if log_file else out.with_name(out.name + ".federate-log.json")
    log_file.write_text(json.dumps(run_log, indent=1))
    coord.run_log = run_log
    say(f"bundle {out}, run log {log_file}")
    return {"card": card, "log": run_log, "coordinator": coord}


def write_federated_bundle(model, info: dict, coord: Coordinator, out: Path, *, name: str,
                           version: str, seconds: float) -> dict:
    from ..bundle import CARD, load_bundle, sha256_file
    from ..fileio import write_atomically
    from ..ood import OOD_FILE, TrainingDistribution
    from .export import write_bundle

    sites = coord.sites
    synthetic = all(s["synthetic"] for s in sites.values())
    n_tr = sum(s["train"] for s in sites.values())
    n_va = sum(s["validation"] for s in sites.values())
    cfg = coord.cfg
    site_list = [{"name": k, "patients": v["patients"], "train": v["train"],
                  "validation": v["validation"]} for k, v in sorted(sites.items())]
    card = {
        "name": name, "version": version, "synthetic_training_data": synthetic,
        "intended_use": ("Demonstration of the software only. Trained on synthetic phantom "
                         "images; NOT FOR CLINICAL USE." if synthetic else
                         "Decision support for cervical TFESI in patients like those it was "
                         "validated on; supports and does not replace clinical judgement."),
        "limitations": [
            "Predicts from one axial T2 slice and one ROI; clinical factors are not used.",
            f"Trained across {len(sites)} sites without pooling their images; validated on "
            "their held-out patients only. Performance elsewhere is unknown until validated "
            "there.",
            "Grad-CAM shows where the network's evidence lies, not why.",
        ] + (["Synthetic images: the model has never seen a real MRI."] if synthetic else []),
        "architecture": info,
        "training": {
            "data": f"federated over {len(sites)} sites (Flower, FedAvg): "
                    + ", ".join(f"{s['name']} {s['patients']} patients" for s in site_list),
            "patients": n_tr + n_va, "train": n_tr, "validation": n_va,
            "sites": site_list,
            "split": "stratified 80%/20% at each site",
            "optimizer": "Adam with cosine decay to 0 within each round's local epochs",
            "learning_rate": cfg.learning_rate, "batch_size": cfg.batch_size,
            "epochs": cfg.rounds * cfg.local_epochs, "loss": "binary cross-entropy",
            "seconds": round(seconds, 1),
            "initialization": (f"fine-tuned from {Path(cfg.init_from).name}" if cfg.init_from
                               else "random"),
            "federated": {"engine": "Flower (flwr) gRPC, start_server/start_client",
                          "strategy": "FedAvg, weighted by training patients",
                          "rounds": cfg.rounds, "local_epochs": cfg.local_epochs,
                          "round_learning_rate": "cosine from the rate to 10 % of it",
                          "what_travelled": "network weights; moments of pooled features "
                          "and intensity histograms; distance histograms; Platt gradients; "
                          "per-bin outcome counts of held-out probabilities. No images, "
                          "outcomes per patient or identifiers."},
            "targets": "the 0/1 outcome",
            "acquisition": _acquisition_range(coord.acquisition),
        },
        "tta": {"crops": [list(c) for c in TTA_CROPS],
                "description": "the ROI as drawn, shifted by 10 % of its size (3x3 grid) and "
                               "scaled 0.88-1.12; mean logit, range as the interval"},
        "changelog": [f"{version}: trained with tfesi federate over {len(sites)} sites"],
    }
    write_bundle(model, out, card=card, overwrite=True)
    TrainingDistribution(
        type(coord.features)(coord.features.mean, coord.features.components,
                             coord.features.variances, coord.features.residual_variance,
                             coord.thresholds[0]),
        type(coord.intensities)(coord.intensities.mean, coord.intensities.components,
                                coord.intensities.variances,
                                coord.intensities.residual_variance, coord.thresholds[1]),
    ).save(out / OOD_FILE)
    full = json.loads((out / CARD).read_text())
    r = coord.result
    full["calibration"] = {"method": "Platt scaling", "temperature": round(r["temperature"], 6),
                           "intercept": round(r["intercept"], 6),
                           "fitted_on": f"{n_va} held-out patients of {len(sites)} sites, "
                                        "federated (Newton steps on summed gradients)"}
    full["ood"] = {"file": OOD_FILE, "threshold": 1.0, "percentile": 99,
                   "feature_threshold": round(coord.thresholds[0], 6),
                   "intensity_threshold": round(coord.thresholds[1], 6),
                   "fitted_on": f"moments of the pooled features and intensity histograms of "
                                f"{n_tr} training patients at {len(sites)} sites; thresholds "
                                "from the sites' distance histograms (99th percentile)",
                   "flagged_validation": r["validation"]["flagged_validation"]}
    full["files"][OOD_FILE] = sha256_file(out / OOD_FILE)
    val = dict(r["validation"])
    val["runtime"] = (f"Keras ROI-set logits at the sites ({len(TTA_CROPS)} ROIs), Platt "
                      "scaling fitted on these patients; probabilities binned to whole percent")
    full["metrics"] = {"validation": val,
                       "per_site_auc_last_round": {
                           k: v["auc"] for k, v in coord.log[cfg.rounds - 1]["sites"].items()}}
    write_atomically(out / CARD, json.dumps(full, indent=1).encode(), private=False)
    load_bundle(out)
    return full


def _acquisition_range(per_site: list[dict]) -> dict:
    """The training range over all sites, as :func:`..site_check.acquisition_range` gives it."""
    out = {}
    for k in ACQUISITION_KEYS:
        lo = [s[f"{k}_min"] for s in per_site if f"{k}_min" in s]
        hi = [s[f"{k}_max"] for s in per_site if f"{k}_max" in s]
        if lo and hi:
            out[k] = [min(lo), max(hi)]
    return out


# --- one command for a local trial: a coordinator and one process per site -------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_local(manifests: list[str | Path], out: str | Path, cfg: FederatedConfig, *,
              name: str, site_names: list[str] | None = None, timeout_s: float = 1800,
              extra_coordinator_args: tuple[str, ...] = (), overwrite: bool = False,
              progress=None) -> dict:
    """Start the coordinator and one client process per manifest on loopback, wait for them
    (at most ``timeout_s``), and return the run log. Every process is ended on the way out."""
    say = progress or (lambda m: None)
    names = site_names or [f"site{i + 1}" for i in range(len(manifests))]
    address = f"127.0.0.1:{free_port()}"
    py = [sys.executable, "-m", "tfesi_desktop.cli", "federate"]
    out = Path(out)
    log_file = out.with_name(out.name + ".federate-log.json")
    coord_cmd = [*py, "coordinator", "--out", str(out), "--address", address,
                 "--sites", str(len(manifests)), "--rounds", str(cfg.rounds),
                 "--local-epochs", str(cfg.local_epochs), "--batch-size", str(cfg.batch_size),
                 "--learning-rate", str(cfg.learning_rate), "--seed", str(cfg.seed),
                 "--name", name, "--log", str(log_file), *extra_coordinator_args]
    if cfg.init_from:
        coord_cmd += ["--init-from", str(cfg.init_from)]
    if overwrite:
        coord_cmd.append("--force")
    env = dict(os.environ, FLWR_TELEMETRY_ENABLED="0")
    procs = [subprocess.Popen(coord_cmd, env=env)]
    try:
        time.sleep(1.0)
        for i, (m, n) in enumerate(zip(manifests, names, strict=True)):
            procs.append(subprocess.Popen(
                [*py, "client", "--manifest", str(m), "--site-name", n, "--address", address,
                 "--seed", str(cfg.seed + 17 * (i + 1))], env=env))
        say(f"coordinator and {len(manifests)} sites started on {address}")
        deadline = time.monotonic() + timeout_s
        while (rc := procs[0].poll()) is None:
            if time.monotonic() > deadline:
                raise TfesiError(f"The federated trial did not finish within {timeout_s:.0f} "
                                 "s.")
            failed = [n for p, n in zip(procs[1:], names, strict=True) if p.poll()]
            if failed:
                raise TfesiError(f"Site {failed[0]} stopped with an error (see its message "
                                 "above); the trial is ended.")
            time.sleep(0.5)
        for p in procs[1:]:
            p.wait(timeout=60)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if rc != 0:
        raise TfesiError("The coordinator stopped with an error (see its message above).")
    return json.loads(log_file.read_text())
