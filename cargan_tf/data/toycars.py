"""toycars: procedural side-view cars (six body types) drawn with OpenCV, the default dataset.

Deterministic per (seed, index), any size >= 16, and the drawing parameters come back as labels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from cargan_tf.errors import ConfigError

BODY_TYPES: tuple[str, ...] = ("sedan", "hatchback", "suv", "pickup", "sports", "van")
COLOURS: tuple[str, ...] = (
    "red", "blue", "white", "black", "silver", "yellow", "green", "orange", "purple",
)
# Nominal RGB of each named colour (index-aligned with COLOURS); cars are drawn with jitter around it.
COLOUR_RGB: tuple[tuple[int, int, int], ...] = (
    (200, 32, 38), (36, 84, 196), (236, 236, 232), (32, 33, 38), (160, 166, 174),
    (242, 198, 36), (38, 142, 72), (240, 118, 28), (118, 52, 150),
)
BACKGROUNDS: tuple[str, ...] = ("plain_light", "plain_dark", "gradient_sky", "gradient_sunset")
# (top, bottom) RGB of each background; plain ones have top == bottom.
BACKGROUND_RGB: tuple[tuple[tuple[int, int, int], tuple[int, int, int]], ...] = (
    ((226, 224, 218), (226, 224, 218)),
    ((62, 68, 80), (62, 68, 80)),
    ((78, 140, 220), (205, 228, 245)),
    ((92, 52, 128), (250, 170, 95)),
)
RIM_RGB: tuple[tuple[int, int, int], ...] = ((200, 203, 210), (70, 72, 78), (236, 236, 236))

_TYRE = (30, 30, 33)
_WELL = (16, 16, 18)
_HEADLIGHT = (252, 244, 196)
_TAILLIGHT = (214, 26, 30)
_SHIFT = 4  # cv2 fixed-point bits: sub-pixel vertices keep small cars smooth
_ONE = 1 << _SHIFT
_BASE_LENGTH = 0.74  # car length as a fraction of the image width at scale 1 (before type factor)


# --- body templates ---------------------------------------------------------------------------
# Side view, front to the right. Units: the car is 100 long; y points up from the ground (y = 0).


def _clip(poly: np.ndarray, y: float, below: bool) -> np.ndarray:
    """Part of a polygon below (or above) the line at height y (Sutherland-Hodgman)."""
    out: list[np.ndarray] = []
    for i in range(len(poly)):
        p, q = poly[i], poly[(i + 1) % len(poly)]
        p_in, q_in = (p[1] <= y, q[1] <= y) if below else (p[1] >= y, q[1] >= y)
        if p_in:
            out.append(p)
        if p_in != q_in:  # the edge crosses the line: keep the crossing point
            t = (y - p[1]) / (q[1] - p[1])
            out.append(p + t * (q - p))
    return np.array(out, dtype=np.float64)


@dataclass(frozen=True)
class _Template:
    length: float                     # nominal length relative to a sedan
    wheel_x: tuple[float, float]      # rear, front wheel centres
    wheel_r: float                    # nominal wheel radius
    sill: float                       # lowest body line (height scaling pivots here)
    outline: np.ndarray               # whole silhouette: body + cabin
    crease: float                     # below this the body is drawn a shade darker
    shine: tuple[float, float]        # a lighter stripe along the shoulder, between these heights
    windows: tuple[np.ndarray, ...]
    head: np.ndarray                  # head light (front, right)
    tail: np.ndarray                  # tail light (rear, left)
    seams: tuple[np.ndarray, ...] = ()   # thin dark lines: doors, the pickup's bed gap
    trims: tuple[np.ndarray, ...] = ()   # small dark solids: spoiler, roof rails

    @functools.cached_property
    def packed(self) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """All stretchable parts in one array, so one vectorised transform places them all.

        Returns x, y - sill, and the split points between parts, in the order: outline, lower
        body, shine stripe, trims, seams, windows, head light, tail light.
        """
        lower = _clip(self.outline, self.crease, below=True)
        shine = _clip(_clip(self.outline, self.shine[0], below=False), self.shine[1], below=True)
        parts = [self.outline, lower, shine, *self.trims, *self.seams, *self.windows, self.head, self.tail]
        pts = np.concatenate(parts)
        bounds = np.cumsum([len(part) for part in parts])[:-1].tolist()
        return pts[:, 0].copy(), pts[:, 1] - self.sill, bounds


def _a(*pts: tuple[float, float]) -> np.ndarray:
    return np.array(pts, dtype=np.float64)


_TEMPLATES: dict[str, _Template] = {
    # sedan: three boxes, bonnet / cabin / boot
    "sedan": _Template(
        length=1.0, wheel_x=(19, 80), wheel_r=10.5, sill=9, shine=(30.5, 32.5), crease=24,
        outline=_a((1.5, 9), (0, 14), (0, 29), (1.5, 33), (24, 35.5), (37, 48.5), (41, 50.5),
                   (58, 50.5), (62, 48.5), (74, 37), (93, 33.5), (99, 29.5), (100, 22),
                   (100, 14), (98, 9)),
        windows=(_a((28, 37.5), (38.5, 47.5), (48.5, 47.5), (48.5, 37.5)),
                 (_a((51, 37.5), (51, 47.5), (59.5, 47.5), (70, 37.5)))),
        head=_a((95, 29.5), (99.6, 28.5), (99.8, 24.5), (95, 25.5)),
        tail=_a((0.2, 30), (3, 30.5), (3, 25.5), (0.2, 25.5)),
        seams=(_a((50, 12), (50, 36.5)), _a((29, 12), (27, 35))),
    ),
    # hatchback: short, the roof runs almost to the steep rear hatch
    "hatchback": _Template(
        length=0.84, wheel_x=(17, 82), wheel_r=11, sill=9, shine=(33, 35), crease=25,
        outline=_a((1.5, 9), (0, 14), (0, 37), (4, 52.5), (8, 55.5), (55, 55.5), (59, 53.5),
                   (73, 38.5), (94, 34.5), (99, 30), (100, 22), (100, 14), (98, 9)),
        windows=(_a((5.5, 40), (9, 52.5), (36, 52.5), (36, 40)),
                 _a((38.5, 40), (38.5, 52.5), (56, 52.5), (68.5, 40))),
        head=_a((95, 30.5), (99.6, 29.5), (99.8, 25.5), (95, 26.5)),
        tail=_a((0.2, 35.5), (3, 35.5), (3, 28), (0.2, 28)),
        seams=(_a((37.2, 12), (37.2, 39)), _a((66, 12), (66, 36))),
    ),
    # SUV: tall and boxy, high ground clearance, big wheels, roof rails
    "suv": _Template(
        length=0.95, wheel_x=(18, 81), wheel_r=12.5, sill=13, crease=30, shine=(40, 42.5),
        outline=_a((1.5, 13), (0, 17), (0, 45), (2, 60), (5, 63), (70, 63), (73, 61),
                   (80.5, 46), (96, 43), (99.5, 39), (100, 20), (98, 13)),
        windows=(_a((4, 47.5), (6, 59.5), (24.5, 59.5), (24.5, 47.5)),
                 _a((27, 47.5), (27, 59.5), (48, 59.5), (48, 47.5)),
                 _a((50.5, 47.5), (50.5, 59.5), (69, 59.5), (75.5, 47.5))),
        head=_a((95, 41.5), (99.6, 39.5), (99.8, 35.5), (95, 36.5)),
        tail=_a((0.2, 44), (3, 44), (3, 35), (0.2, 35)),
        seams=(_a((49.2, 16), (49.2, 46.5)), _a((26, 16), (26, 46.5))),
        trims=(_a((8, 63), (8, 65.2), (66, 65.2), (66, 63)),),
    ),
    # pickup: cab with one window, then an open load bed (lower than the cab) at the back
    "pickup": _Template(
        length=1.05, wheel_x=(17, 80), wheel_r=12, sill=13, crease=30, shine=(36.5, 38.5),
        outline=_a((1, 13), (0, 17), (0, 41), (1, 42.5), (44.5, 42.5), (46, 44), (47, 61),
                   (49, 63), (64, 63), (67, 61.5), (75, 45.5), (96, 43), (99.5, 39),
                   (100, 20), (98, 13)),
        windows=(_a((49.5, 46.5), (50.5, 60), (63.5, 60), (71, 46.5)),),
        head=_a((95, 41.5), (99.6, 39.5), (99.8, 35.5), (95, 36.5)),
        tail=_a((0.2, 39), (3, 39), (3, 31), (0.2, 31)),
        seams=(_a((45.3, 14), (45.3, 43)), _a((1.5, 40.2), (44, 40.2))),
    ),
    # sports car: low and long, cabin set back with a sloping rear, a spoiler
    "sports": _Template(
        length=1.0, wheel_x=(18, 81), wheel_r=10.5, sill=7, shine=(23.5, 25.5), crease=19,
        outline=_a((1.5, 8), (0, 12), (0, 24), (1.5, 27), (4, 28), (20, 30), (36, 41),
                   (44, 43), (56, 43), (61, 41), (74, 31), (93, 26.5), (99, 22.5), (100, 17),
                   (100, 12), (98, 7)),
        windows=(_a((26.5, 31.5), (38.5, 40), (55, 40.5), (67.5, 31.5)),),
        head=_a((93, 25.2), (98.8, 22.6), (99.2, 20.8), (93, 23.2)),
        tail=_a((0.2, 23.5), (3, 23.5), (3, 19.5), (0.2, 19.5)),
        seams=(_a((60, 10), (61, 30)),),
        trims=(_a((1.5, 27.5), (1, 32), (10, 32), (10, 30.5), (6, 30.5), (6, 28)),),
    ),
    # van: tall, with a long flat roof that runs over a short nose
    "van": _Template(
        length=0.98, wheel_x=(16, 83), wheel_r=11, sill=11, shine=(44, 46.5), crease=32,
        outline=_a((1.5, 11), (0, 15), (0, 66), (2, 70), (5, 71), (77, 71), (81, 69),
                   (92, 50), (97, 46.5), (100, 40), (100, 18), (98, 11)),
        windows=(_a((4, 52), (4, 67), (27, 67), (27, 52)),
                 _a((30, 52), (30, 67), (56, 67), (56, 52)),
                 _a((60, 52), (60, 66.5), (78.5, 66.5), (88, 52))),
        head=_a((96, 45), (99.6, 42.5), (99.8, 37.5), (96, 39)),
        tail=_a((0.2, 42), (3, 42), (3, 31), (0.2, 31)),
        seams=(_a((58, 14), (58, 50)), _a((28.5, 14), (28.5, 50))),
    ),
}


# --- parameters ---------------------------------------------------------------------------------


def _car_length(body_type: int, scale: float) -> float:
    """Car length as a fraction of the image width."""
    return _BASE_LENGTH * _TEMPLATES[BODY_TYPES[body_type]].length * scale


def sample_params(rng: np.random.Generator) -> dict[str, Any]:
    """One random parameter set for `draw_car`.

    Holds the seven label keys plus appearance knobs that are not labels: "height" (body height
    factor), "colour_jitter" (RGB offsets), "bg_jitter" (top then bottom RGB offsets), "road",
    "road_grey", "dash_phase" and "rim" (index into RIM_RGB).
    """
    # one call for all the numbers: per-call overhead of Generator methods dominates otherwise
    u = rng.random(21).tolist()

    def uni(i: int, lo: float, hi: float) -> float:
        return lo + (hi - lo) * u[i]

    body_type = int(u[0] * len(BODY_TYPES))
    scale = uni(1, 0.86, 1.1)
    # wheel radius as a fraction of the image width, around the template's nominal size
    nominal = _TEMPLATES[BODY_TYPES[body_type]].wheel_r / 100 * _car_length(body_type, scale)
    return {
        "body_type": body_type,
        "colour": int(u[2] * len(COLOURS)),
        "background": int(u[3] * len(BACKGROUNDS)),
        "wheel_size": nominal * uni(4, 0.86, 1.14),
        "offset_x": uni(5, -0.04, 0.04),
        "offset_y": uni(6, -0.04, 0.04),
        "scale": scale,
        # appearance knobs that are not labels
        "height": uni(7, 0.92, 1.08),  # body/cabin height relative to the template
        "colour_jitter": tuple(uni(i, -14, 14) for i in range(8, 11)),
        "bg_jitter": tuple(uni(i, -12, 12) for i in range(11, 17)),  # top rgb, bottom rgb
        "road": u[17] < 0.75,
        "road_grey": uni(18, 70, 100),
        "dash_phase": u[19],
        "rim": int(u[20] * len(RIM_RGB)),
    }


# --- drawing ------------------------------------------------------------------------------------


def _supersample(size: int) -> int:
    """Drawing scale: 4x up to 64 px; bigger images are smooth enough at 2x and much cheaper.

    Powers of two, because OpenCV's INTER_AREA halving has a fast path: two 2x steps take a
    quarter of the time of one 3x or 4x step.
    """
    return 4 if size <= 64 else 2


@functools.lru_cache(maxsize=8)
def _unit_circle(canvas: int) -> np.ndarray:
    n = 20 if canvas <= 160 else 28 if canvas <= 320 else 40  # enough vertices to look round
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(a), np.sin(a)], axis=1)


@functools.lru_cache(maxsize=8)
def _ramp(canvas: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, canvas, dtype=np.float32)[:, None]


def _rgb(c: tuple[float, ...] | list[float]) -> tuple[int, int, int]:
    """Clipped integer colour for cv2 (pure Python: numpy is slow on 3-element arrays)."""
    r, g, b = (min(255, max(0, int(v + 0.5))) for v in c)
    return r, g, b


def _mix(c: tuple[float, ...], gain: float, add: float = 0.0) -> tuple[int, int, int]:
    return _rgb([v * gain + add for v in c])


def _background(params: dict[str, Any], canvas: int) -> tuple[np.ndarray, tuple[float, ...]]:
    """Canvas filled with the background; returns it and the (jittered) top colour."""
    top_c, bottom_c = BACKGROUND_RGB[params["background"]]
    jit = params.get("bg_jitter", (0.0,) * 6)
    top = _rgb([c + j for c, j in zip(top_c, jit[:3])])
    img = np.empty((canvas, canvas, 3), np.uint8)
    if top_c == bottom_c:  # plain: cv2 fills 3-channel images far faster than numpy broadcasting
        cv2.rectangle(img, (0, 0), (canvas, canvas), top, -1)
        return img, top
    bottom = np.array(_rgb([c + j for c, j in zip(bottom_c, jit[3:])]), np.float32)
    column = (np.array(top, np.float32) + _ramp(canvas) * (bottom - np.array(top, np.float32)))
    column = (column + 0.5).astype(np.uint8)[:, None, :]  # (canvas, 1, 3)
    cv2.resize(column, (canvas, canvas), dst=img, interpolation=cv2.INTER_NEAREST)
    return img, top


def draw_car(params: dict[str, Any], size: int, channels: int = 3) -> np.ndarray:
    """One car image (uint8, size x size x channels, RGB) from explicit parameters.

    `params` as from `sample_params`; only the label keys are required, the rest default to
    neutral values (no jitter, a road, silver rims).
    """
    _check_size_channels(size, channels)
    f = _supersample(size)
    canvas = size * f
    tpl = _TEMPLATES[BODY_TYPES[params["body_type"]]]
    img, bg_top = _background(params, canvas)

    k = _car_length(params["body_type"], params["scale"]) * canvas / 100.0  # px per unit
    h = float(params.get("height", 1.0))
    xs, ys, bounds = tpl.packed
    roof = tpl.sill + float(ys.max()) * h
    cx = canvas * (0.5 + params["offset_x"])
    ground = canvas * (0.5 + params["offset_y"]) + roof / 2 * k  # bounding box centred on cy
    x0 = cx - 50.0 * k  # image x of the rear (template x = 0)

    # every body part in one transform; cv2 takes fixed-point int32 coordinates (shift bits)
    pts = np.empty((len(xs), 2), np.int32)
    pts[:, 0] = xs * (k * _ONE) + (x0 * _ONE + 0.5)
    pts[:, 1] = ys * (-h * k * _ONE) + ((ground - tpl.sill * k) * _ONE + 0.5)
    parts = [pts[a:b] for a, b in zip([0, *bounds], [*bounds, len(pts)])]
    outline, lower, shine = parts[0], parts[1], parts[2]
    i = 3 + len(tpl.trims)
    trims, seams = parts[3:i], parts[i:i + len(tpl.seams)]
    windows = parts[i + len(tpl.seams):-2]
    head, tail = parts[-2], parts[-1]

    aa = cv2.LINE_AA
    body = [c + j for c, j in zip(COLOUR_RGB[params["colour"]],
                                   params.get("colour_jitter", (0.0, 0.0, 0.0)))]

    # road: a grey band the wheels stand on, a kerb line at its far edge, lane dashes nearer
    if params.get("road", True):
        grey = float(params.get("road_grey", 85.0))
        top_y = int(ground - 0.05 * canvas)
        kerb = max(1, int(round(0.012 * canvas)))
        cv2.rectangle(img, (0, top_y - kerb), (canvas, canvas), _rgb((grey + 95,) * 3), -1)
        cv2.rectangle(img, (0, top_y), (canvas, canvas), _rgb((grey, grey, grey + 4)), -1)
        if canvas - ground > 0.1 * canvas:
            lane_y = (ground + canvas) / 2
            period, dash, half = 0.22 * canvas, 0.12 * canvas, max(0.006 * canvas, 1.0)
            xs_d = np.arange(-params.get("dash_phase", 0.0) * period, canvas, period)
            quads = np.empty((len(xs_d), 4, 2), np.float64)
            quads[:, [0, 3], 0] = xs_d[:, None]
            quads[:, [1, 2], 0] = xs_d[:, None] + dash
            quads[:, :2, 1] = lane_y - half
            quads[:, 2:, 1] = lane_y + half
            cv2.fillPoly(img, list((quads * _ONE).astype(np.int32)), (225, 222, 200), aa, _SHIFT)
        shadow = _rgb((grey * 0.45, grey * 0.45, grey * 0.5))
    else:
        shadow = _mix(img[min(int(ground), canvas - 1), 0].tolist(), 0.6)
    # soft contact shadow under the car
    cv2.ellipse(img, (int(cx * _ONE), int(ground * _ONE)), (int(47 * k * _ONE), int(3 * k * _ONE)),
                0, 0, 360, shadow, -1, aa, _SHIFT)

    # body: silhouette, darker lower half, dark outline so light cars separate from light skies
    cv2.fillPoly(img, [outline], _rgb(body), aa, _SHIFT)
    cv2.fillPoly(img, [lower], _mix(body, 0.9), aa, _SHIFT)
    cv2.fillPoly(img, [shine], _mix(body, 0.85, 45), aa, _SHIFT)
    edge = _mix(body, 0.45)
    if trims:
        cv2.fillPoly(img, trims, _mix(body, 0.35, 15), aa, _SHIFT)
    thin = max(1, int(round(0.55 * f)))
    cv2.polylines(img, seams, False, edge, thin, aa, _SHIFT)
    # glass: dark tint with a little of the sky reflected
    glass = _rgb([g * 0.75 + t * 0.25 for g, t in zip((58, 74, 92), bg_top)])
    cv2.fillPoly(img, windows, glass, aa, _SHIFT)
    cv2.fillPoly(img, [head], _HEADLIGHT, aa, _SHIFT)
    cv2.fillPoly(img, [tail], _TAILLIGHT, aa, _SHIFT)
    cv2.polylines(img, [outline], True, edge, thin, aa, _SHIFT)

    # wheels: a dark arch cut into the body, tyre, rim, hub
    for poly, colour in zip(_wheel_polys(tpl, params["wheel_size"] * canvas / k, canvas, k, x0,
                                         ground),
                            (_WELL, _TYRE, RIM_RGB[params.get("rim", 0)],
                             _mix(RIM_RGB[params.get("rim", 0)], 0.55))):
        cv2.fillPoly(img, poly, colour, aa, _SHIFT)

    out = img
    while out.shape[0] > size:  # area-average down in 2x steps (exact, and fast, see above)
        half = out.shape[0] // 2
        out = cv2.resize(out, (half, half), interpolation=cv2.INTER_AREA)
    if channels == 1:
        return cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)[:, :, None]
    return out


def _wheel_polys(
    tpl: _Template, r: float, canvas: int, k: float, x0: float, ground: float
) -> list[list[np.ndarray]]:
    """Fixed-point polygons [wells, tyres, rims, hubs] (two of each) for wheel radius r (units)."""
    arch = 1.14 * r
    # the arch is the part of a slightly larger circle that lies inside the body (y >= sill)
    lo = float(np.arcsin(np.clip((tpl.sill - r) / arch, -1.0, 1.0)))
    arc = _arc(lo) * arch
    well = np.concatenate([arc, [[-arch * np.cos(lo), tpl.sill - r]]])
    circle = _unit_circle(canvas)
    shapes = np.concatenate([well, circle * r, circle * (0.6 * r), circle * (0.2 * r)])
    wheel_x = np.asarray(tpl.wheel_x, np.float64)
    pts = np.empty((2, len(shapes), 2), np.int32)
    pts[:, :, 0] = (x0 + (shapes[None, :, 0] + wheel_x[:, None]) * k) * _ONE + 0.5
    pts[:, :, 1] = (ground - (shapes[None, :, 1] + r) * k) * _ONE + 0.5
    n_w, n_c = len(well), len(circle)
    cuts = [0, n_w, n_w + n_c, n_w + 2 * n_c, n_w + 3 * n_c]
    return [[pts[w, a:b] for w in range(2)] for a, b in zip(cuts[:-1], cuts[1:])]


def _arc(lo: float) -> np.ndarray:
    a = np.linspace(lo, np.pi - lo, 14)
    return np.stack([np.cos(a), np.sin(a)], axis=1)


# --- batches ------------------------------------------------------------------------------------


def _check_size_channels(size: int, channels: int) -> None:
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 16:
        raise ConfigError(f"toycars: size must be an integer >= 16, got {size!r}")
    if channels not in (1, 3):
        raise ConfigError(f"toycars: channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")


def draw_toycars(
    n: int, size: int = 64, seed: int = 0, channels: int = 3, start: int = 0
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Draw images `start .. start + n - 1` of the toycars set for `seed`.

    Returns images, uint8 (n, size, size, channels): RGB for channels=3, luminance for 1; and
    labels, arrays of length n: "body_type", "colour", "background" (int64 indices into
    BODY_TYPES / COLOURS / BACKGROUNDS), "wheel_size" (wheel radius / image width), "offset_x",
    "offset_y" (car centre shift from the image centre, fraction of width / height) and "scale"
    (car size relative to its body type's nominal size), all float32. Image i depends only on
    (seed, start + i), so any slice can be drawn on its own.
    """
    if n < 0 or start < 0 or seed < 0:
        raise ConfigError(f"toycars: n, start and seed must be >= 0, got {n}, {start}, {seed}")
    _check_size_channels(size, channels)
    images = np.empty((n, size, size, channels), np.uint8)
    int_keys, float_keys = ("body_type", "colour", "background"), (
        "wheel_size", "offset_x", "offset_y", "scale")
    labels = {key: np.empty(n, np.int64) for key in int_keys}
    labels.update({key: np.empty(n, np.float32) for key in float_keys})
    for i in range(n):
        params = sample_params(np.random.default_rng([seed, start + i]))
        images[i] = draw_car(params, size, channels)
        for key in labels:
            labels[key][i] = params[key]
    return images, labels


def contact_sheet(images: np.ndarray, cols: int = 8, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile images (n, h, w[, c]) into one uint8 grid, `cols` wide, `pad` pixels of `fill` apart."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    sheet = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), fill, np.uint8)
    for i, image in enumerate(images):
        y, x = pad + (i // cols) * (h + pad), pad + (i % cols) * (w + pad)
        sheet[y:y + h, x:x + w] = image
    return sheet
