"""Fuzz the readers: mutated DICOM files, folders, ZIPs, DICOMDIRs and model cards.

Every case is made from a seed and its number, so any case can be replayed. Each case runs the
program's own readers as a user would reach them: ``scan`` (headers), decoding of slices,
``tfesi info --json`` (whose output must be strict JSON), and ``load_bundle`` for cards. Outcomes:

- ``read``: the readers returned (decoding errors that are one of our clear errors included);
- ``clear error``: one of our :class:`TfesiError` (``tfesi`` exits 2 with one ``error:`` line);
- ``anything else``: any other exception, a wrong exit code, non-JSON output, a case that runs
  past its time limit, or a crash of the process (the cases run in a child process, restarted
  after a crash). The last column must stay 0.

    python scripts/fuzz.py --seconds 300 --seed 1          # a campaign
    python scripts/fuzz.py --replay 1:4711 --keep /tmp/c    # one case, its files kept
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OUTCOMES = ("read", "clear error", "anything else")
CASE_SECONDS = 20  # a case running longer counts as a hang

# values a damaged or hostile header may hold, by VR
_HOSTILE = {
    "IS": [b"2000000000", b"-1", b"0", b"abc", b"1e9", b"3e7", b"99999999999", b"", b"nan"],
    "DS": [b"nan", b"inf", b"-inf", b"1e308", b"-0.7\\0.7", b"0\\0", b"x", b"1\\2\\3",
           b"1\\0\\0\\0\\1\\0", b"1\\0\\0\\1\\0\\0", b"0\\0\\0\\0\\0\\0", b"0.5\\0\\0\\0\\1\\0",
           b"1e-320"],
    "US": [b"\x00\x00", b"\xff\xff", b"\x01\x00", b"\x00\x80", b"\x40\x00", b"\x03\x00"],
    "UI": [b"", b"1.2.3", b"\x00" * 8, b"../../x", b"9" * 64],
    "CS": [b"MONOCHROME1", b"YBR_FULL_422", b"RGB", b"PALETTE COLOR", b"", b"\\\\\\"],
    "VR": [b"UM", b"SQ", b"OB", b"UN", b"\x00\x00", b"ZZ", b"UT", b"FD"],
}
# tags worth attacking (group, element, VR)
_TAGS = [
    (0x0028, 0x0008, "IS"), (0x0028, 0x0010, "US"), (0x0028, 0x0011, "US"),
    (0x0028, 0x0100, "US"), (0x0028, 0x0101, "US"), (0x0028, 0x0002, "US"),
    (0x0028, 0x0103, "US"), (0x0028, 0x0004, "CS"), (0x0028, 0x0030, "DS"),
    (0x0020, 0x0032, "DS"), (0x0020, 0x0037, "DS"), (0x0028, 0x1052, "DS"),
    (0x0028, 0x1053, "DS"), (0x0028, 0x1050, "DS"), (0x0028, 0x1051, "DS"),
    (0x0020, 0x0011, "IS"), (0x0020, 0x0013, "IS"), (0x0018, 0x0081, "DS"),
    (0x0020, 0x000E, "UI"), (0x0020, 0x000D, "UI"), (0x0008, 0x0018, "UI"),
    (0x0002, 0x0010, "UI"), (0x0008, 0x0060, "CS"),
]


def _seeds() -> list[tuple[str, bytes]]:
    """Starting files: the demo study (RLE and uncompressed) and some of pydicom's corpus."""
    from tfesi_desktop.core.paths import demo_study

    out = [(f.name, f.read_bytes()) for f in sorted(demo_study().iterdir())[::3]]
    try:
        import pydicom.data

        for name in ("CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm",
                     "emri_small_big_endian.dcm", "MR_small_implicit.dcm", "rtplan.dcm",
                     "SC_rgb_rle.dcm", "US1_J2KR.dcm", "MR2_J2KI.dcm", "color3d_jpeg_baseline.dcm",
                     "liver.dcm", "SC_rgb_jpeg_dcmtk.dcm", "MR_small_jpeg_ls_lossless.dcm"):
            with contextlib.suppress(Exception):
                p = pydicom.data.get_testdata_file(name)
                if p:
                    out.append((name, Path(p).read_bytes()))
    except ImportError:
        pass
    return out


def _tag_bytes(group: int, elem: int) -> bytes:
    return group.to_bytes(2, "little") + elem.to_bytes(2, "little")


def _set_value(data: bytearray, rng: random.Random) -> bytearray:
    """Replace the value (or VR) of one attacked tag in explicit-VR little-endian data."""
    g, e, vr = rng.choice(_TAGS)
    i = data.find(_tag_bytes(g, e))
    if i < 0 or i + 8 > len(data):
        return data
    if rng.random() < 0.2:  # change the VR only: values break when first used
        data[i + 4:i + 6] = rng.choice(_HOSTILE["VR"])
        return data
    if not data[i + 4:i + 6].isalpha():  # implicit VR: leave it
        return data
    old_len = int.from_bytes(data[i + 6:i + 8], "little")
    value = rng.choice(_HOSTILE[vr])
    if vr != "US" and len(value) % 2:
        value += b" " if vr in ("IS", "DS", "CS") else b"\0"
    return data[:i + 6] + len(value).to_bytes(2, "little") + value + data[i + 8 + old_len:]


def _mutate(data: bytes, rng: random.Random) -> bytes:
    d = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        head = min(len(d), 3000)
        if kind < 0.35:
            d = _set_value(d, rng)
        elif kind < 0.55 and head:  # flip bytes, mostly in the header
            for _ in range(rng.randint(1, 8)):
                j = rng.randrange(head) if rng.random() < 0.8 else rng.randrange(len(d))
                d[j] = rng.randrange(256)
        elif kind < 0.65:  # truncate
            d = d[:rng.randrange(len(d) + 1)]
        elif kind < 0.75 and head:  # insert or delete a few bytes in the header
            j = rng.randrange(head)
            if rng.random() < 0.5:
                d[j:j] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
            else:
                del d[j:j + rng.randint(1, 16)]
        elif kind < 0.85 and len(d) > 8:  # a length field set huge or odd
            j = rng.randrange(max(len(d) - 4, 1))
            d[j:j + 4] = rng.choice([b"\xff\xff\xff\xff", b"\xfe\xff\xff\x7f", b"\x01\x00\x00\x00"])
        else:  # duplicate a chunk (repeated elements, nested sequences)
            if len(d) > 16:
                j = rng.randrange(len(d) - 8)
                k = min(len(d), j + rng.randint(8, 512))
                d[k:k] = d[j:k]
    return bytes(d)


def make_case(seed: int, index: int, seeds, folder: Path) -> tuple[str, list[str]]:
    """Write case ``index`` of campaign ``seed`` into ``folder``; return (kind, paths to read)."""
    rng = random.Random(f"{seed}:{index}")
    kind = rng.choices(["file", "folder", "zip", "dicomdir", "card"], [45, 25, 12, 8, 10])[0]
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "card":
        return kind, [str(_mutated_card(rng, folder))]
    n = 1 if kind == "file" else rng.randint(2, 5)
    files = []
    for k in range(n):
        name, data = rng.choice(seeds)
        mutated = _mutate(data, rng) if (k == 0 or rng.random() < 0.5) else data
        p = folder / f"f{k}_{name}"
        p.write_bytes(mutated)
        files.append(p)
    if kind == "file":
        return kind, [str(files[0])]
    if kind == "folder":
        return kind, [str(folder)]
    if kind == "zip":
        z = folder.parent / f"{folder.name}.zip"
        with zipfile.ZipFile(z, "w", rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])) as zf:
            for p in files:
                zf.write(p, rng.choice([p.name, f"sub/{p.name}", f"../{p.name}", f"/{p.name}"]))
        raw = bytearray(z.read_bytes())
        if rng.random() < 0.3 and len(raw) > 30:  # a damaged archive
            for _ in range(rng.randint(1, 6)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            z.write_bytes(bytes(raw))
        return kind, [str(z)]
    return kind, [str(_dicomdir(files, folder, rng))]


def _dicomdir(files, folder: Path, rng: random.Random) -> Path:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.FileSetID = "FUZZ"
    recs = []
    for p in files:
        r = Dataset()
        r.DirectoryRecordType = "IMAGE"
        r.ReferencedFileID = rng.choice([[p.name], [p.name], ["..", "x.dcm"], ["/etc", "passwd"],
                                         ["missing.dcm"], [p.name, "deeper"], ["", p.name]])
        recs.append(r)
    ds.DirectoryRecordSequence = recs
    out = folder / "DICOMDIR"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    out.write_bytes(_mutate(data, rng) if rng.random() < 0.5 else data)
    return out


def _mutated_card(rng: random.Random, folder: Path) -> Path:
    """A bundle folder (small fake files) whose card is mutated."""
    import hashlib

    from tfesi_desktop.core.bundle import DEMO_BUNDLE
    from tfesi_desktop.core.paths import resource_path

    card = json.loads((resource_path(*DEMO_BUNDLE) / "card.json").read_text())
    b = folder / "bundle"
    b.mkdir()
    files = {}
    for name in ("model.tflite", "head.npz"):
        data = os.urandom(64)
        (b / name).write_bytes(data)
        files[name] = hashlib.sha256(data).hexdigest()
    card["files"] = files
    hostile = [None, True, 0, -1, 1, 0.5, 1e308, "abc", "", [], {}, [[0, 0]], [[0, 0, 1.0]],
               {"temperature": -1}, {"temperature": 2.0, "method": "t"},
               {"crops": [[1, 2, 0.9]]}, {"file": "ood.npz", "threshold": 1.0},
               "../x", ["a"], {"../../etc/passwd": "0" * 64}]
    keys = ["threshold", "files", "calibration", "tta", "ood", "synthetic_training_data",
            "name", "version", "preprocessing_version", "metrics", "format", "limitations",
            "architecture", "changelog"]
    for _ in range(rng.randint(1, 3)):
        k = rng.choice(keys)
        if rng.random() < 0.15:
            card.pop(k, None)
        else:
            card[k] = rng.choice(hostile)
    text = json.dumps(card)
    if rng.random() < 0.2:  # damaged text
        raw = bytearray(text.encode())
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        (b / "card.json").write_bytes(bytes(raw))
    else:
        (b / "card.json").write_text(text)
    return b


def _reject(name):
    raise ValueError(name)


class _Timeout(BaseException):
    pass


def _on_alarm(signum, frame):
    raise _Timeout()


def run_case(kind: str, paths: list[str]) -> tuple[str, str]:
    """(outcome, detail) of one case."""
    from tfesi_desktop.cli import main
    from tfesi_desktop.core.errors import TfesiError

    try:
        if kind == "card":
            from tfesi_desktop.core.bundle import load_bundle

            try:
                b = load_bundle(paths[0])
                b.validated_performance(), b.disclaimer(), b.threshold, b.sha256
                return "read", ""
            except TfesiError:
                return "clear error", ""
        from tfesi_desktop.core.dicom import modality_values, scan

        try:
            res = scan(paths if len(paths) > 1 else paths[0])
        except TfesiError:
            outcome = "clear error"
        else:
            outcome = "read"
            for stack in res.stacks:
                for ref in {stack.slices[0].key: stack.slices[0],
                            stack.slices[len(stack.slices) // 2].key:
                                stack.slices[len(stack.slices) // 2]}.values():
                    with contextlib.suppress(TfesiError):
                        modality_values(ref)
                    with contextlib.suppress(TfesiError):
                        ref.require_geometry()
            del res
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["info", "--json", *paths])
        if rc == 0:
            json.loads(out.getvalue(), parse_constant=_reject)
        elif rc == 2:
            lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
            if len(lines) != 1 or not lines[0].startswith("error: "):
                return "anything else", f"exit 2 without one error line: {err.getvalue()[:300]}"
        else:
            return "anything else", f"tfesi info exit {rc}: {err.getvalue()[-300:]}"
        if (rc == 0) != (outcome == "read"):
            return "anything else", f"scan said {outcome} but tfesi info exited {rc}"
        return outcome, ""
    except _Timeout:
        return "anything else", f"ran past {CASE_SECONDS} s"
    except Exception as e:  # noqa: BLE001 - this is what the fuzzer looks for
        return "anything else", f"{type(e).__name__}: {e}\n{traceback.format_exc()[-1500:]}"


def run_cases(seed: int, start: int, stop: int | None, deadline: float, report) -> None:
    """Run cases start, start+1, ... in this process, calling report(index, kind, outcome,
    detail) for each, until ``stop`` or the deadline (time.monotonic)."""
    warnings.simplefilter("ignore")  # pydicom warns about damaged files on purpose
    seeds = _seeds()
    use_alarm = hasattr(signal, "setitimer")
    if use_alarm:
        signal.signal(signal.SIGALRM, _on_alarm)
    i = start
    while (stop is None or i < stop) and time.monotonic() < deadline:
        work = Path(tempfile.mkdtemp(prefix="tfesi-fuzz-"))
        try:
            kind, paths = make_case(seed, i, seeds, work / "case")
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
            try:
                outcome, detail = run_case(kind, paths)
            finally:
                if use_alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        report(i, kind, outcome, detail)
        i += 1


def _child(seed: int, start: int, deadline_wall: float) -> None:
    """The child process: run cases and print one JSON line each (the parent counts them)."""
    deadline = time.monotonic() + max(0.0, deadline_wall - time.time())

    def report(i, kind, outcome, detail):
        print(json.dumps({"i": i, "kind": kind, "outcome": outcome, "detail": detail}),
              flush=True)

    home = tempfile.mkdtemp(prefix="tfesi-fuzz-home-")
    os.environ["TFESI_HOME"] = home  # nothing the cases write reaches the user's folder
    try:
        run_cases(seed, start, None, deadline, report)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def campaign(seed: int, seconds: float, *, verbose: bool = False) -> tuple[Counter, list]:
    """Run cases in child processes for ``seconds``; a crash or hang of the child counts the
    case it was running as 'anything else' and a new child goes on after it."""
    import subprocess

    counts: Counter = Counter()
    kinds: Counter = Counter()
    failures = []
    end = time.time() + seconds
    start = 0
    while time.time() < end:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", str(seed), str(start), str(end)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=str(ROOT))
        last = start - 1
        for line in proc.stdout:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            last = r["i"]
            counts[r["outcome"]] += 1
            kinds[(r["kind"], r["outcome"])] += 1
            if r["outcome"] == "anything else":
                failures.append((f"{seed}:{r['i']}", r["kind"], r["detail"]))
                if verbose:
                    print(f"case {seed}:{r['i']} ({r['kind']}): {r['detail']}", file=sys.stderr)
        rc = proc.wait()
        if rc != 0 and time.time() < end:  # the child died inside case last + 1
            counts["anything else"] += 1
            failures.append((f"{seed}:{last + 1}", "?", f"the process died (exit {rc})"))
        start = last + 2 if rc != 0 else last + 1
        if rc == 0:
            break
    return counts, failures, kinds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--replay", metavar="SEED:INDEX", help="run one case and print its outcome")
    p.add_argument("--keep", metavar="DIR", help="with --replay: write the case's files here")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.child:
        _child(int(args.child[0]), int(args.child[1]), float(args.child[2]))
        return 0
    if args.replay:
        seed, index = (int(v) for v in args.replay.split(":"))
        warnings.simplefilter("ignore")
        work = Path(args.keep or tempfile.mkdtemp(prefix="tfesi-fuzz-"))
        try:
            kind, paths = make_case(seed, index, _seeds(), work / "case")
            print(kind, paths, *run_case(kind, paths))
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        return 0
    t0 = time.time()
    counts, failures, kinds = campaign(args.seed, args.seconds, verbose=args.verbose)
    tried = sum(counts.values())
    print(f"seed {args.seed}, {time.time() - t0:.0f} s")
    print(f"{'tried':>8} {'read':>8} {'clear error':>12} {'anything else':>14}")
    print(f"{tried:8d} {counts['read']:8d} {counts['clear error']:12d} "
          f"{counts['anything else']:14d}")
    for (kind, outcome), n in sorted(kinds.items()):
        print(f"  {kind:9s} {outcome:14s} {n}")
    for case, kind, detail in failures[:20]:
        print(f"\ncase {case} ({kind}): {detail}")
    return 1 if counts["anything else"] else 0


if __name__ == "__main__":
    sys.exit(main())
