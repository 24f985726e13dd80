"""``tfesi train``, ``tfesi model ...`` and ``tfesi bench``: making, installing, signing and
timing model bundles."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..app_options import require_extra
from ..core.errors import TfesiError
from .common import Parser as _Parser
from .common import say as _say

# network.ARCHITECTURES, spelled out so that building the parser does not import Keras
TRAIN_VARIANTS = ("original", "no-regularization", "from-scratch", "compact")


# --- tfesi train -------------------------------------------------------------------------------

def cmd_train(args) -> int:
    require_extra("train")
    from ..core.training.train import TrainConfig, bundle_from_directory, recipe, train

    out = Path(args.out)
    if out.exists() and not args.force:
        raise TfesiError("This bundle folder exists; choose another or add --force.", out)
    if args.imagenet_weights and not Path(args.imagenet_weights).is_file():
        raise TfesiError("The ImageNet weights file does not exist.", args.imagenet_weights)
    if args.imagenet_weights and args.init == "random":
        raise TfesiError("--imagenet-weights and --init random contradict each other.")
    name = args.name or out.name
    if args.from_trained:
        card = bundle_from_directory(args.from_trained, args.manifest, out, name=name,
                                     version=args.version, precision=args.precision,
                                     overwrite=args.force)
    else:
        settings = recipe(args.variant)  # what is not given: the variant's recipe
        settings.update({k: v for k in settings if (v := getattr(args, k)) is not None})
        cfg = TrainConfig(variant=args.variant, **settings,
                          validation_fraction=args.validation_fraction, seed=args.seed,
                          init=args.init, imagenet_weights=args.imagenet_weights,
                          augment=not args.no_augment, soft_labels=args.soft_labels,
                          init_from=args.init_from,
                          devices=args.devices or [])
        if (cfg.variant not in ("from-scratch", "compact") and cfg.init == "imagenet"
                and not cfg.init_from):
            from ..core.training.network import imagenet_weights_file

            imagenet_weights_file(cfg.imagenet_weights)  # fails early, before reading studies
        card = train(args.manifest, out, cfg, name=name, version=args.version,
                     precision=args.precision, overwrite=args.force,
                     progress=_say)
    v = card["metrics"]["validation"]
    if args.json:
        print(json.dumps({"bundle": str(out), "validation": v}, indent=1))
    else:
        print(f"bundle written to {out}")
        for k, val in v.items():
            print(f"  validation {k}: {val}")
    return 0


# --- tfesi model -------------------------------------------------------------------------------

def cmd_model_info(args) -> int:
    from ..core.bundle import default_bundle_path, load_bundle

    b = load_bundle(args.bundle or default_bundle_path())
    if args.json:
        print(json.dumps(b.card, indent=1))
        return 0
    c = b.card
    print(f"{b.name} {b.version}  ({b.path})")
    print(f"  {b.disclaimer()}")
    print(f"  intended use: {c.get('intended_use', '-')}")
    print(f"  {b.validated_performance()}")
    arch = c.get("architecture", {})
    variant = arch.get("variant")
    named = f" ({variant} variant)" if variant and variant not in (arch.get("base"), "compact") \
        else ""
    print(f"  network: {arch.get('base')}{named}, {arch.get('parameters', 0):,} parameters, "
          + ("from ImageNet weights" if arch.get("imagenet_initialization")
             else "from random weights (no ImageNet)"))
    t = c.get("training", {})
    if t:
        print(f"  training: {t.get('data')}; {t.get('train')} train / {t.get('validation')} "
              f"validation; {t.get('optimizer')} (learning rate {t.get('learning_rate')}), "
              f"batch {t.get('batch_size')}, {t.get('epochs')} epochs")
    print(f"  preprocessing version {c['preprocessing_version']}, threshold {b.threshold}")
    print(f"  model SHA-256 {b.sha256}")
    for lim in c.get("limitations", []):
        print(f"  limitation: {lim}")
    return 0


def cmd_model_install(args) -> int:
    from ..core.model_gate import install_checked  # the install floor (issue 24)

    dest, gate = install_checked(args.bundle, make_default=not args.no_default,
                                 min_auc_lower=args.min_auc_lower, force=args.force)
    if not gate.passed:
        print(f"warning: installed with --force although {gate.sentence()}; its card says so",
              file=sys.stderr)
    print(f"installed {dest}" + ("" if args.no_default else " (now the default model)"))
    return 0


def cmd_model_list(args) -> int:
    from ..core.bundle import installed_bundles

    rows = installed_bundles()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        mark = "*" if r["default"] else " "
        print(f"{mark} {r['name']} {r['version']}  {r['performance']}  ({r['path']})")
    if not rows:
        print("no model installed")
    print("* = default model")
    return 0


def cmd_model_sign(args) -> int:
    from ..core.bundle import sign_bundle, trusted_keys_dir

    sig = sign_bundle(args.bundle, args.key, new_key=args.new_key)
    print(f"signed {args.bundle} (bundle SHA-256 {sig['bundle_sha256']}) with key "
          f"{sig['key_id']}")
    if args.new_key:
        print(f"new key pair: {args.key} (private, keep it safe) and its public key beside it; "
              f"copy the public key into {trusted_keys_dir()} on each computer that should "
              "trust this signer")
    return 0


def cmd_model_verify(args) -> int:
    from ..core.bundle import verify_signature

    b = verify_signature(args.bundle or _default_bundle(), args.key)
    print(f"verified: {b.name} {b.version}, bundle SHA-256 {b.sha256}, signed by {b.signer}")
    return 0


def _default_bundle():
    from ..core.bundle import default_bundle_path

    return default_bundle_path()


# --- tfesi bench -------------------------------------------------------------------------------

def cmd_bench(args) -> int:
    from ..core.bench import run_bench

    figures = run_bench(model=args.model, repeat=args.repeat, quick=args.quick,
                        progress=None if args.json else
                        _say)
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        for k, v in figures.items():
            print(f"{k:45s} {v}")
    return 0


def register_train(sub) -> None:
    """``train``."""
    s = sub.add_parser("train", help="train a model bundle on a manifest (paper's protocol)")
    s.add_argument("manifest", help="manifest CSV (format: README)")
    s.add_argument("--out", required=True, help="bundle folder to write")
    s.add_argument("--variant", choices=TRAIN_VARIANTS, default="original",
                   help="the paper's network (original), an ablation variant, or compact: a "
                        "small CNN that learns from random weights on a CPU (README)")
    s.add_argument("--epochs", type=int,
                   help="default: 26 (the paper's); 30 for compact")
    s.add_argument("--batch-size", type=int, help="default: 8; 32 for compact")
    s.add_argument("--learning-rate", type=float, help="default: 1e-5; 1e-3 for compact")
    s.add_argument("--optimizer", choices=("rmsprop", "adam"),
                   help="rmsprop at a constant rate (the paper's; default) or adam with cosine "
                        "decay (default for compact)")
    s.add_argument("--validation-fraction", type=float, default=0.2)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--init", choices=("imagenet", "random"), default="imagenet",
                   help="initialise the base from ImageNet (the paper's; default) or randomly")
    s.add_argument("--no-augment", action="store_true",
                   help="train on the ROIs as drawn (no ROI or intensity jitter)")
    s.add_argument("--init-from", metavar="MODEL.keras",
                   help="start from this model's weights (same architecture) and fine-tune")
    s.add_argument("--soft-labels", metavar="COLUMN",
                   help="synthetic cohorts only: train against this column's probability "
                        "(e.g. p_favourable) instead of the 0/1 label; recorded on the card")
    s.add_argument("--imagenet-weights", metavar="PATH",
                   help="local efficientnetv2-b0_notop.h5 (nothing is downloaded)")
    s.add_argument("--precision", choices=("float32", "float16"), default="float32",
                   help="weights of the LiteRT export (float16 halves the file)")
    s.add_argument("--name", help="model name for the card (default: the folder's name)")
    s.add_argument("--version", default="1.0.0")
    s.add_argument("--devices", nargs="*", metavar="DEV",
                   help="train with tf.distribute.MirroredStrategy over these devices")
    s.add_argument("--from-trained", metavar="DIR",
                   help="bundle a model trained elsewhere (model.keras + record.json)")
    s.add_argument("--force", action="store_true", help="replace an existing bundle folder")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_train)


def register_model(sub) -> None:
    """``model info|install|list|sign|verify``."""
    s = sub.add_parser("model", help="model bundles")
    msub = s.add_subparsers(dest="model_command", required=True, parser_class=_Parser)
    m = msub.add_parser("info", help="print a bundle's card (default: the model in use)")
    m.add_argument("bundle", nargs="?")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_model_info)
    m = msub.add_parser("install", help="install a validated bundle and make it the default")
    m.add_argument("bundle")
    m.add_argument("--no-default", action="store_true", help="install without making it "
                   "the default")
    m.add_argument("--min-auc-lower", type=float, default=0.6, metavar="AUC",
                   help="refuse a bundle whose validated AUC's lower 95 %% bound is not above "
                        "this (default 0.6)")
    m.add_argument("--force", action="store_true", help="install a bundle below the floor or "
                   "with degenerate calibration anyway; its card records that it was forced")
    m.set_defaults(func=cmd_model_install)
    m = msub.add_parser("list", help="list installed models")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_model_list)
    m = msub.add_parser("sign", help="sign a bundle with an Ed25519 key (signature.json)")
    m.add_argument("bundle")
    m.add_argument("--key", required=True, metavar="KEY.pem", help="unencrypted PEM private key")
    m.add_argument("--new-key", action="store_true",
                   help="make a new key pair at KEY.pem (and KEY.pub.pem) first")
    m.set_defaults(func=cmd_model_sign)
    m = msub.add_parser("verify", help="verify a bundle's files and its signature by a trusted "
                        "key (default: the model in use)")
    m.add_argument("bundle", nargs="?")
    m.add_argument("--key", metavar="PUBLIC.pem", help="check against this public key instead "
                   "of the trusted-keys folder")
    m.set_defaults(func=cmd_model_verify)


def register_bench(sub) -> None:
    """``bench``."""
    s = sub.add_parser("bench", help="measure prediction speed, start-up and training")
    s.add_argument("--model", help="bundle (default: the model in use)")
    s.add_argument("--repeat", type=int, default=200, help="timed predictions")
    s.add_argument("--quick", action="store_true", help="fewer repeats, no training figure")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_bench)
