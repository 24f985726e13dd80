"""Pictures for people: a windowed slice, a heat-map colour scale and overlays (NumPy + Pillow).

Used for ``tfesi predict --heatmap`` and the PDF report; the desktop viewer draws its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# a perceptually ordered blue-cyan-yellow-red scale (like "turbo", simplified): stops in 0..1
_STOPS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_COLOURS = np.array([[48, 18, 59], [40, 160, 230], [120, 250, 100], [250, 180, 40],
                     [180, 20, 10]], float)


def heat_colours(values: np.ndarray) -> np.ndarray:
    """RGB (..., 3) uint8 for values in 0..1 (low: dark blue, high: red)."""
    v = np.clip(np.asarray(values, float), 0, 1)
    rgb = np.stack([np.interp(v, _STOPS, _COLOURS[:, c]) for c in range(3)], axis=-1)
    return rgb.astype(np.uint8)


def windowed(values: np.ndarray, centre: float, width: float) -> np.ndarray:
    """Modality values through a linear window to uint8 grey (0 black, 255 white)."""
    lo = centre - width / 2
    return (np.clip((np.asarray(values, float) - lo) / max(width, 1e-6), 0, 1) * 255).astype(
        np.uint8)


def overlay(grey: np.ndarray, cam: np.ndarray, roi, *, opacity: float = 0.4,
            outline=(255, 220, 0)) -> np.ndarray:
    """RGB image: the grey slice, the map blended inside the ROI only, the ROI outlined."""
    rgb = np.repeat(np.asarray(grey, np.uint8)[..., None], 3, axis=2).astype(float)
    x, y, w, h = roi
    if cam is not None:
        heat = heat_colours(cam).astype(float)
        rgb[y:y + h, x:x + w] = (1 - opacity) * rgb[y:y + h, x:x + w] + opacity * heat
    out = rgb.astype(np.uint8)
    if outline is not None:
        out[y, x:x + w] = out[y + h - 1, x:x + w] = outline
        out[y:y + h, x] = out[y:y + h, x + w - 1] = outline
    return out


def radiological(geometry):
    """(dihedral, edge letters) that bring a slice to radiological orientation (the patient's
    right on the image's left, anterior up), as the viewer and the model input do; the
    identity (and the stored letters) for a slice that is not axial, no letters without a
    geometry (docs/architecture.md, invariant 1)."""
    from .errors import TfesiError
    from .geometry import Dihedral, SliceGeometry

    if geometry is None:
        return Dihedral(), {}
    try:
        d = geometry.canonical_transform()
    except TfesiError:
        return Dihedral(), geometry.edge_letters()
    r, c = d.directions(geometry.row_cos, geometry.col_cos)
    return d, SliceGeometry(geometry.position, tuple(r), tuple(c), geometry.spacing,
                            geometry.shape).edge_letters()


def radiological_overlay(values, geometry, window, roi, cam, *, opacity: float = 0.4,
                         measurements=(), scale: int = 1):
    """(RGB uint8 picture, ROI in it, edge letters): the slice windowed, in radiological
    orientation, with the map (kept, like the ROI, in stored pixels) blended inside the ROI and
    the ROI outlined. ``measurements``: (label, points) pairs, the points (x = column, y = row,
    continuous) in stored pixels like the ROI, drawn as lines (an angle: two legs) with their
    label, in the same orientation; ``scale``: the picture enlarged (nearest) before they are
    drawn, so that the lines and labels are finer than the slice's pixels."""
    d, letters = radiological(geometry)
    grey = np.ascontiguousarray(d.apply(windowed(values, *window)))
    shape = np.shape(values)
    out_roi = d.rect_to_canonical(roi, shape)
    cam = None if cam is None else np.ascontiguousarray(d.apply(np.asarray(cam)))
    rgb = overlay(grey, cam, out_roi, opacity=opacity)
    if scale != 1:
        rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
        out_roi = tuple(v * scale for v in out_roi)
    if measurements:
        rgb = _draw_measurements(rgb, [
            (label, [tuple(scale * v for v in d.rect_to_canonical((x, y, 0, 0), shape)[:2])
                     for x, y in points]) for label, points in measurements])
    return rgb, out_roi, letters


MEASURE_COLOUR = (0, 230, 255)  # cyan: apart from the yellow ROI and the heat map's colours


def _draw_measurements(rgb: np.ndarray, lines) -> np.ndarray:
    """Draw (label, [(x, y), ...]) polylines (picture pixels, continuous) with a dark edge, for
    black-and-white printing too, and the label beside the last point."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.fromarray(np.asarray(rgb, np.uint8))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=max(10, min(18, img.width // 28)))
    w = max(1, img.width // 256)
    for label, pts in lines:
        xy = [(x - 0.5, y - 0.5) for x, y in pts]  # continuous -> PIL's pixel-centre grid
        draw.line(xy, fill=(0, 0, 0), width=w + 2)
        draw.line(xy, fill=MEASURE_COLOUR, width=w)
        for x, y in xy:
            draw.ellipse((x - w - 1, y - w - 1, x + w + 1, y + w + 1), fill=MEASURE_COLOUR)
        if label:
            x, y = xy[-1]
            draw.text((x + 4, y - 4), label, fill=MEASURE_COLOUR, font=font, anchor="lm",
                      stroke_width=2, stroke_fill=(0, 0, 0))
    return np.asarray(img, np.uint8)


def radiological_letters(geometry) -> dict[str, str]:
    """The orientation letters of a slice's edges once shown radiologically (keys top, bottom,
    left, right): "A" at the top, "R" on the left for an axial slice, whatever the storage."""
    return radiological(geometry)[1]


def colour_bar(height: int, width: int = 14) -> np.ndarray:
    """A vertical colour bar, high values at the top, RGB uint8."""
    v = np.linspace(1, 0, height)[:, None] * np.ones((1, width))
    return heat_colours(v)


def save_png(rgb: np.ndarray, path: str | Path, *, labels: dict[str, str] | None = None,
             scale: int = 1, caption: str | None = None) -> None:
    """Save RGB as PNG, optionally with orientation letters at the edges (keys top, bottom,
    left, right) and a caption line below. Written atomically."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.fromarray(np.asarray(rgb, np.uint8))
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    w, h = img.width, img.height
    img_full = img
    if caption:
        font = ImageFont.load_default(size=max(11, min(15, w // 40)))
        lines = [""]
        for word in caption.split():  # wrapped to the picture's width
            line = f"{lines[-1]} {word}".strip()
            if lines[-1] and font.getlength(line) > w - 8:
                lines.append(word)
            else:
                lines[-1] = line
        step = font.size + 3
        img_full = Image.new("RGB", (w, h + step * len(lines) + 6), (0, 0, 0))
        img_full.paste(img, (0, 0))
        draw = ImageDraw.Draw(img_full)
        for i, line in enumerate(lines):
            draw.text((4, h + 4 + i * step), line, fill=(255, 255, 255), font=font)
    if labels:
        size = max(12, min(22, w // 24))
        font = ImageFont.load_default(size=size)
        d = ImageDraw.Draw(img_full)
        m = size // 3
        pos = {"top": ((w // 2, m), "mt"), "bottom": ((w // 2, h - m), "mb"),
               "left": ((m, h // 2), "lm"), "right": ((w - m, h // 2), "rm")}
        for k, text in labels.items():
            xy, anchor = pos[k]
            d.text(xy, text, fill=(255, 255, 0), font=font, anchor=anchor)
    from .errors import TfesiError
    from .fileio import write_atomically

    # a slice of a patient: private (0600); a missing folder or a folder as target is a
    # TfesiError, and nothing is left behind
    path = Path(path)
    if not path.parent.is_dir():
        raise TfesiError("The folder for this file does not exist.", path.parent)
    write_atomically(path, lambda f: img_full.save(f, format="PNG"), private=True)


def display_name(name: str | None) -> str:
    """A DICOM person name as people read it: "FAMILY, Given Middle" ("Fakhouri^Bruno" ->
    "FAKHOURI, Bruno"); empty parts dropped; "(no name)" when there is none. The window and
    the report show names this way."""
    parts = [p.strip() for p in (name or "").split("=")[0].split("^")]
    family, given = (parts + ["", ""])[:2]
    rest = " ".join(p for p in parts[2:4] if p)
    given = " ".join(p for p in (given, rest) if p)
    if not family and not given:
        return "(no name)"
    return f"{family.upper()}, {given}" if family and given else (family.upper() or given)
