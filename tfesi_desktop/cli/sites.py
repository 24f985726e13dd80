"""``tfesi federate`` and ``tfesi site-check`` (issue 24): training across sites without sharing
images, and whether a site's images resemble the training images."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..core.errors import TfesiError
from .common import finite as _finite
from .common import load_predictor
from .common import progress_printer as _progress


def cmd_federate(args) -> int:
    from ..core.training import federated as fed

    def say(message):
        print(message, file=sys.stderr, flush=True)

    if args.mode == "client":
        if not args.manifest or len(args.manifest) != 1:
            raise TfesiError("A client reads one manifest: its own site's (--manifest).")
        site = fed.Site.load((args.site_name or ["site"])[0], args.manifest[0], seed=args.seed)
        say(f"site {site.name}: {len(site.train_idx)} training and {len(site.val_idx)} "
            f"held-out patients; connecting to {args.address}")
        fed.run_client(site, args.address)
        return 0
    cfg = fed.FederatedConfig(sites=args.sites or len(args.manifest or []), rounds=args.rounds,
                              local_epochs=args.local_epochs, batch_size=args.batch_size,
                              learning_rate=args.learning_rate, seed=args.seed,
                              init_from=args.init_from)
    if not args.out:
        raise TfesiError("--out (the bundle folder to write) is needed.")
    name = args.name or Path(args.out).name
    if args.mode == "coordinator":
        if not args.sites:
            raise TfesiError("--sites (how many sites to wait for) is needed.")
        result = fed.run_coordinator(cfg, args.out, address=args.address, name=name,
                                     log_file=args.log, overwrite=args.force, progress=say)
        log = result["log"]
    else:
        if not args.manifest or len(args.manifest) < 2:
            raise TfesiError("A local trial needs two or more --manifest (one per site).")
        log = fed.run_local(args.manifest, args.out, cfg, name=name, site_names=args.site_name,
                            timeout_s=args.timeout, overwrite=args.force, progress=say)
    print(json.dumps({"bundle": str(args.out), "sites": log["sites"],
                      "validation": log["validation"]}, indent=1))
    return 0


def cmd_site_check(args) -> int:
    from ..core.site_check import site_check, site_check_text
    from ..core.site_note import mark_validated, record_check

    predictor = load_predictor(args.model)
    if args.validated:  # the model was validated on this site's outcomes: clear the note
        if args.path:
            raise TfesiError("--validated takes no manifest: it records that the model in use "
                             "(or --model) was validated here.")
        if mark_validated(predictor.bundle) is None:
            raise TfesiError("No site check of this model was recorded (tfesi site-check "
                             "--record MANIFEST).")
        print(f"recorded: {predictor.bundle.name} {predictor.bundle.version} validated at "
              "this site; its predictions no longer carry the site note")
        return 0
    if not args.path:
        raise TfesiError("Give the site's manifest (or a folder with manifest.csv).")
    result = site_check(args.path, predictor, training_manifest=args.training_manifest,
                        progress=_progress("scoring patients"))
    if args.record:
        entry = record_check(predictor.bundle, result)
        result["recorded"] = entry
    print(json.dumps(_finite(result), indent=1) if args.json else site_check_text(result),
          end="\n" if args.json else "")
    if args.record and not args.json:
        print("recorded: " + ("every prediction of this model now says this site's images "
                              "differ, until tfesi site-check --validated" if entry["differs"]
                              else "the site's images resemble the training images"))
    return 0


def _site_check_parser(sub) -> None:
    s = sub.add_parser("site-check", help="does a site's batch of images resemble the "
                       "training images? With outcomes: local AUC and calibration")
    s.add_argument("path", nargs="?", help="the site's manifest CSV (labels optional), or a "
                   "folder with manifest.csv")
    s.add_argument("--record", action="store_true", help="keep the verdict: where the site "
                   "differs, every prediction of this model says so until --validated")
    s.add_argument("--validated", action="store_true", help="record that the model was "
                   "validated on this site's outcomes (clears the note)")
    s.add_argument("--model", help="bundle (default: the model in use)")
    s.add_argument("--training-manifest", metavar="CSV", help="the training manifest, for the "
                   "acquisition range when the card records none")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_site_check)


def _federate_parser(sub) -> None:
    s = sub.add_parser("federate", help="train one model across sites without sharing images "
                       "(Flower): a coordinator and one client per site, or a local trial")
    s.add_argument("mode", choices=("local", "coordinator", "client"),
                   help="local: start a coordinator and one client per --manifest here")
    s.add_argument("--manifest", action="append", help="a site's manifest (client: its own)")
    s.add_argument("--site-name", action="append",
                   help="the site's name on the card (default site1, site2, ...)")
    s.add_argument("--out", help="bundle folder the coordinator writes")
    s.add_argument("--address", default="127.0.0.1:8080", help="coordinator HOST:PORT")
    s.add_argument("--sites", type=int, help="coordinator: number of sites to wait for")
    s.add_argument("--rounds", type=int, default=5, help="training rounds")
    s.add_argument("--local-epochs", type=int, default=2, help="epochs at each site per round")
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--learning-rate", type=float, default=1e-3)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--init-from", metavar="BUNDLE", help="start from this bundle's network "
                   "(e.g. the shipped model) instead of random weights")
    s.add_argument("--name", help="model name on the card (default: the folder's name)")
    s.add_argument("--log", metavar="JSON", help="run log (default: beside the bundle)")
    s.add_argument("--timeout", type=float, default=1800, help="local: stop after this many s")
    s.add_argument("--force", action="store_true", help="replace an existing bundle folder")
    s.set_defaults(func=cmd_federate)


def register(sub) -> None:
    """``federate`` and ``site-check``."""
    _federate_parser(sub)
    _site_check_parser(sub)
