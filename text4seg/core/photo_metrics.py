"""Word-level scores of a text mask on real photos with word-polygon truth (issue 14's scorer).

Pure numpy / scipy / scikit-image: this module imports nothing from the repository, so a benchmark,
an evaluation or an outside scorer can use it as it is.

Truth is a list of word polygons, each with a don't-care flag (ICDAR's ``###``). Don't-care words are
removed from both sides: they are not words to find, and predicted pixels inside them count neither
for nor against precision. Where a cared-for word and a don't-care word overlap, the cared-for word
wins (its pixels stay scored), so every word is scored over its whole polygon.

A pixel (row, col) belongs to a polygon when the point (x=col, y=row) lies inside or on it
(``skimage.draw.polygon``): the quad with corners x 5..15, y 10..20 covers 11×11 pixels, which is
ICDAR's inclusive-corner reading. A polygon too thin to cover any pixel keeps the pixels at its
vertices, so a tiny word is still a word.

Figures, all pooled over photos (sums of counts, then one ratio):

- word recall: share of cared-for words with ≥ ``recall_fraction`` (10 %) of their polygon's pixels
  predicted as text.
- precision: share of predicted text pixels (outside don't-care words) that lie within
  ``dilation_fraction`` × image diagonal of a cared-for word polygon. 0.25 % of the diagonal is
  ≈ 3.7 px on a 1280×720 ICDAR2015 photo, about a sixth of its median word height (22 px): it absorbs
  the few pixels of slack in hand-drawn quads and the soft edges of stroke masks, and it grows with
  the photo's resolution as that slack does. A fixed share of the diagonal much larger than this
  (2 % is 29 px there) would exceed most word heights and let a detector's blob over a neighbouring
  text-like texture count as on text.
- grid IoU: the answer's gh×gw grid against the polygon grid, where a cell is text when
  ≥ ``grid_fraction`` (10 %) of its pixels are cared-for word polygon. A cell that is not text but
  would be if the don't-care words counted is ignored (out of both intersection and union). Cell
  (i, j) covers rows [⌈i·H/gh⌉, ⌈(i+1)·H/gh⌉) and columns likewise, the split
  ``text4seg.core.masks`` uses. Sums of intersections over sums of unions.
- empty photos: photos with at least one cared-for word where the prediction has no pixel at all.
- no-text photos (no polygon of any kind): how many got an empty mask, and the mean share of their
  pixels predicted as text. They do not enter recall, precision or grid IoU.

Photos whose only polygons are don't-care words count as photos with text for precision and grid IoU
(there is nothing to find but text may be there) and are neither "empty" candidates nor no-text photos.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RECALL_FRACTION = 0.10
GRID_FRACTION = 0.10
DILATION_FRACTION = 0.0025

Polygon = np.ndarray | Sequence[Sequence[float]] | Sequence[float]
"""N×2 (x, y) vertices, or a flat x1, y1, x2, y2, … sequence (ICDAR order)."""


def polygon_pixels(polygon: Polygon, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) int arrays of the pixels of ``polygon`` inside an image of ``shape`` = (H, W).

    Empty arrays when the polygon lies wholly outside the image.
    """
    from skimage.draw import polygon as fill_polygon

    points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if len(points) < 3:
        raise ValueError(f"a polygon needs at least 3 vertices, got {len(points)}")
    rows, cols = fill_polygon(points[:, 1], points[:, 0], shape=shape)
    if len(rows):
        return rows.astype(np.intp), cols.astype(np.intp)
    # Too thin to hold a pixel centre: keep the vertex pixels that fall inside the image.
    vr, vc = np.round(points[:, 1]).astype(np.intp), np.round(points[:, 0]).astype(np.intp)
    keep = (vr >= 0) & (vr < shape[0]) & (vc >= 0) & (vc < shape[1])
    unique = np.unique(np.stack([vr[keep], vc[keep]], axis=1), axis=0)
    return unique[:, 0], unique[:, 1]


def rasterize(polygons: Sequence[Polygon], shape: tuple[int, int]) -> np.ndarray:
    """H×W bool union of ``polygons`` (see :func:`polygon_pixels`)."""
    out = np.zeros(shape, dtype=bool)
    for polygon in polygons:
        rows, cols = polygon_pixels(polygon, shape)
        out[rows, cols] = True
    return out


def dilation_radius(shape: tuple[int, int], fraction: float = DILATION_FRACTION) -> float:
    """Precision's tolerance in pixels: ``fraction`` of the diagonal of an image of ``shape``."""
    return float(fraction * np.hypot(*shape))


def near(mask: np.ndarray, radius: float) -> np.ndarray:
    """H×W bool: pixels within Euclidean distance ``radius`` of a True pixel of ``mask``."""
    from scipy.ndimage import distance_transform_edt

    if not mask.any():
        return np.zeros_like(mask, dtype=bool)
    return distance_transform_edt(~mask) <= radius


def cell_fractions(mask: np.ndarray, grid_size: tuple[int, int]) -> np.ndarray:
    """gh×gw float64: share of each cell's pixels that are True in the H×W ``mask`` (0 for a cell
    with no pixels, which happens only when the grid is finer than the image)."""
    gh, gw = grid_size
    h, w = mask.shape
    integral = np.zeros((h + 1, w + 1), dtype=np.int64)
    integral[1:, 1:] = np.cumsum(np.cumsum(mask, axis=0, dtype=np.int64), axis=1)
    rows = (np.arange(gh + 1) * h + gh - 1) // gh  # edge k = ceil(k·H/gh)
    cols = (np.arange(gw + 1) * w + gw - 1) // gw
    r0, r1, c0, c1 = rows[:-1, None], rows[1:, None], cols[None, :-1], cols[None, 1:]
    counts = integral[r1, c1] - integral[r0, c1] - integral[r1, c0] + integral[r0, c0]
    areas = (r1 - r0) * (c1 - c0)
    return np.divide(counts, areas, out=np.zeros(counts.shape), where=areas > 0)


def polygon_grid(
    care: np.ndarray, dont_care: np.ndarray, grid_size: tuple[int, int], *, fraction: float = GRID_FRACTION
) -> tuple[np.ndarray, np.ndarray]:
    """(text, ignored), two gh×gw bool grids from H×W masks of cared-for and don't-care words.

    text: ≥ ``fraction`` of the cell is cared-for word. ignored: not text, but ≥ ``fraction`` of the
    cell is word of either kind.
    """
    text = cell_fractions(care, grid_size) >= fraction
    ignored = ~text & (cell_fractions(care | dont_care, grid_size) >= fraction)
    return text, ignored


@dataclass(frozen=True)
class PhotoScore:
    """One photo's counts (what :class:`PhotoMeter` sums)."""

    words: int
    """Cared-for words (polygons with at least one pixel in the image)."""
    words_found: int
    """Cared-for words with ≥ the recall fraction of their pixels predicted."""
    dont_care: int
    """Don't-care polygons."""
    predicted: int
    """Predicted text pixels outside don't-care words."""
    predicted_near_text: int
    """Of those, the pixels within the dilation radius of a cared-for word."""
    area: float
    """Share of the photo's pixels predicted as text (before removing don't-care pixels), 0..1."""
    grid_intersection: int | None
    """Grid cells text in both the answer and the polygon grid (None: no grid given)."""
    grid_union: int | None
    """Grid cells text in either, ignored cells left out (None: no grid given)."""
    has_text: bool
    """The photo has at least one polygon (of either kind)."""

    @property
    def empty(self) -> bool:
        """No pixel predicted at all."""
        return self.area == 0.0


def score_photo(
    pred_mask: np.ndarray,
    polygons: Sequence[Polygon],
    dont_care: Sequence[bool],
    *,
    grid: np.ndarray | None = None,
    recall_fraction: float = RECALL_FRACTION,
    grid_fraction: float = GRID_FRACTION,
    dilation_fraction: float = DILATION_FRACTION,
) -> PhotoScore:
    """Score one H×W bool prediction against its word polygons (see the module docstring).

    polygons: word polygons in the prediction's pixel coordinates; dont_care: one flag per polygon.
    grid: the answer's gh×gw bool grid, or None to skip the grid IoU for this photo.
    """
    pred = np.asarray(pred_mask)
    if pred.ndim != 2 or pred.dtype != bool:
        raise ValueError(f"pred_mask must be an H×W bool array, got shape {pred.shape} dtype {pred.dtype}")
    if len(polygons) != len(dont_care):
        raise ValueError(f"{len(polygons)} polygons but {len(dont_care)} don't-care flags")
    shape = pred.shape
    pixels = [polygon_pixels(p, shape) for p in polygons]
    care_pixels = [px for px, flag in zip(pixels, dont_care, strict=True) if not flag and len(px[0])]
    care = np.zeros(shape, dtype=bool)
    dc = np.zeros(shape, dtype=bool)
    for (rows, cols), flag in zip(pixels, dont_care, strict=True):
        (dc if flag else care)[rows, cols] = True
    scored = pred & ~(dc & ~care)
    found = sum(int(pred[rows, cols].mean() >= recall_fraction) for rows, cols in care_pixels)
    on_text = scored & near(care, dilation_radius(shape, dilation_fraction))
    inter = union = None
    if grid is not None:
        grid = np.asarray(grid)
        if grid.ndim != 2 or grid.dtype != bool:
            raise ValueError(f"grid must be a gh×gw bool array, got shape {grid.shape} dtype {grid.dtype}")
        text, ignored = polygon_grid(care, dc, grid.shape, fraction=grid_fraction)
        kept = ~ignored
        inter, union = int((grid & text & kept).sum()), int(((grid | text) & kept).sum())
    return PhotoScore(
        words=len(care_pixels),
        words_found=found,
        dont_care=int(sum(bool(f) for f in dont_care)),
        predicted=int(scored.sum()),
        predicted_near_text=int(on_text.sum()),
        area=float(pred.mean()),
        grid_intersection=inter,
        grid_union=union,
        has_text=len(polygons) > 0,
    )


@dataclass(frozen=True)
class PhotoSummary:
    """Pooled figures over the photos a :class:`PhotoMeter` has seen."""

    photos: int
    """All photos scored."""
    text_photos: int
    """Photos with at least one polygon."""
    words: int
    """Cared-for words over all photos."""
    words_found: int
    word_recall: float | None
    """words_found / words (None: no cared-for word seen)."""
    precision: float | None
    """Predicted pixels near a word / predicted pixels, over text photos (None: nothing predicted)."""
    grid_iou: float | None
    """Σ intersections / Σ unions over text photos given a grid (None: no grid or an empty union)."""
    grid_photos: int
    """Text photos that came with a grid."""
    empty_photos: int
    """Photos with at least one cared-for word and an empty prediction."""
    photos_with_words: int
    """Photos with at least one cared-for word (the denominator of ``empty_photos``)."""
    no_text_photos: int
    """Photos without any polygon."""
    no_text_empty: int
    """No-text photos whose prediction is empty."""
    no_text_mean_area: float | None
    """Mean share of a no-text photo's pixels predicted as text (None: no no-text photo)."""

    def to_json(self) -> dict:
        """The summary as a JSON-ready dict."""
        return dict(self.__dict__)


def _ratio(num: int | float, den: int | float) -> float | None:
    return float(num) / float(den) if den else None


class PhotoMeter:
    """Accumulates :func:`score_photo` over photos; :meth:`summary` pools the counts."""

    def __init__(
        self,
        *,
        recall_fraction: float = RECALL_FRACTION,
        grid_fraction: float = GRID_FRACTION,
        dilation_fraction: float = DILATION_FRACTION,
    ) -> None:
        for name, value in (("recall_fraction", recall_fraction), ("grid_fraction", grid_fraction)):
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        if dilation_fraction < 0:
            raise ValueError(f"dilation_fraction must be >= 0, got {dilation_fraction}")
        self.recall_fraction = recall_fraction
        self.grid_fraction = grid_fraction
        self.dilation_fraction = dilation_fraction
        self.scores: list[PhotoScore] = []

    def update(
        self,
        pred_mask: np.ndarray,
        polygons: Sequence[Polygon],
        dont_care: Sequence[bool],
        grid: np.ndarray | None = None,
    ) -> PhotoScore:
        """Score one photo (H×W bool prediction, its polygons and flags, optional gh×gw bool grid)."""
        score = score_photo(
            pred_mask,
            polygons,
            dont_care,
            grid=grid,
            recall_fraction=self.recall_fraction,
            grid_fraction=self.grid_fraction,
            dilation_fraction=self.dilation_fraction,
        )
        self.scores.append(score)
        return score

    def summary(self) -> PhotoSummary:
        """The figures pooled over every photo scored so far (:func:`summarize`)."""
        return summarize(self.scores)


def summarize(scores: Sequence[PhotoScore]) -> PhotoSummary:
    """Pool photos' counts into one :class:`PhotoSummary`: sums of counts, then one ratio per figure
    (not a mean of per-photo ratios), so counts kept per photo and pooled later give the same figures."""
    text = [s for s in scores if s.has_text]
    no_text = [s for s in scores if not s.has_text]
    gridded = [s for s in text if s.grid_union is not None]
    with_words = [s for s in text if s.words > 0]
    words = sum(s.words for s in text)
    return PhotoSummary(
        photos=len(scores),
        text_photos=len(text),
        words=words,
        words_found=sum(s.words_found for s in text),
        word_recall=_ratio(sum(s.words_found for s in text), words),
        precision=_ratio(sum(s.predicted_near_text for s in text), sum(s.predicted for s in text)),
        grid_iou=_ratio(sum(s.grid_intersection for s in gridded), sum(s.grid_union for s in gridded)),
        grid_photos=len(gridded),
        empty_photos=sum(s.empty for s in with_words),
        photos_with_words=len(with_words),
        no_text_photos=len(no_text),
        no_text_empty=sum(s.empty for s in no_text),
        no_text_mean_area=_ratio(sum(s.area for s in no_text), len(no_text)),
    )
