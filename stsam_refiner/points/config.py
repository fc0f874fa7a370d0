"""Config dataclasses for sparse point refinement (SAM-MI's TSPP + SMAgg), loadable from YAML.

One dataclass per component: probability targets, the trainable prompter, point sampling, SAM
prompting, mask aggregation and the Text4Seg-style baseline refiner; :class:`PointsConfig` nests
them and names the refinement mode. No torch import, so configs can be read anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from text4seg.core.config import Config

SKELETON_METHODS = ("lee", "zhang")
SAMPLERS = ("bernoulli", "multinomial", "top")
POINT_MODES = ("tspp", "grid", "random", "text4seg")
SPARSE_MODES = ("tspp", "random")


@dataclass(frozen=True, kw_only=True)
class TargetConfig:
    """SAM-MI's target sampling probabilities (Eq. 3–5) on a grid of candidate points."""

    grid_size: int = 32
    """Candidate points per side (d_h = d_w = 32 in SAM-MI): the points of SAM's ``build_point_grid``."""
    g_p: float = 5.0
    """Grid points per expected sampled point: P_k = min(ceil(area_k / g_p), m_p)."""
    m_p: int = 10
    """Upper limit of the expected number of points in one mask."""
    skeleton: str = "lee"
    """``skimage.morphology.skeletonize`` method. ``lee`` gives the centred skeleton a reader would
    draw on small grid masks (a 3×5 bar → its middle row); ``zhang`` leans to one corner there."""
    split_components: bool = False
    """Treat every 8-connected component of a mask as its own mask (one P_k per word or object
    instead of one per class). SAM-MI uses one mask per class (False)."""

    def __post_init__(self) -> None:
        if self.grid_size < 2:
            raise ValueError(f"targets.grid_size {self.grid_size} must be >= 2")
        if self.g_p <= 0 or self.m_p < 1:
            raise ValueError(f"targets.g_p {self.g_p} must be > 0 and m_p {self.m_p} >= 1")
        if self.skeleton not in SKELETON_METHODS:
            raise ValueError(f"targets.skeleton {self.skeleton!r} not in {SKELETON_METHODS}")


@dataclass(frozen=True, kw_only=True)
class PrompterConfig:
    """The small trainable head: per-class coarse maps → per-point sampling probability."""

    max_classes: int = 8
    """Most foreground classes/instances one image may carry (inputs are padded to this)."""
    hidden: int = 16
    """Channel width of the per-class point-wise MLP and of the attention across classes."""
    num_heads: int = 2
    """Heads of the attention across classes (class-level context, SAM-MI's attention block)."""
    context_kernel: int = 5
    """Side of the depth-wise convolution that gives each point its spatial neighbourhood."""
    use_image: bool = True
    """Also feed the image, resized to the point grid, so points can follow edges the coarse grid
    cannot show."""
    lambda_mse: float = 0.5
    """Weight of the probability MSE against the per-point class cross-entropy (SAM-MI: 0.5)."""

    def __post_init__(self) -> None:
        if self.max_classes < 1 or self.hidden < 1:
            raise ValueError(f"prompter.max_classes {self.max_classes} and hidden {self.hidden} must be >= 1")
        if self.hidden % self.num_heads != 0:
            raise ValueError(f"prompter.hidden {self.hidden} not divisible by num_heads {self.num_heads}")
        if self.context_kernel < 1 or self.context_kernel % 2 == 0:
            raise ValueError(f"prompter.context_kernel {self.context_kernel} must be odd and >= 1")
        if self.lambda_mse < 0:
            raise ValueError(f"prompter.lambda_mse {self.lambda_mse} must be >= 0")


@dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    """How points are drawn from a probability map at inference."""

    sampler: str = "bernoulli"
    """``bernoulli``: each grid point independently with min(p, 1) (E[N] = Σ p, SAM-MI Eq. 2);
    ``multinomial``: round(Σ p) distinct points drawn in proportion to p; ``top``: the round(Σ p)
    most probable points (deterministic)."""
    budget_scale: float = 1.0
    """Multiplies the prompter's map before sampling, so the expected point count is
    budget_scale · Σp. SAM-MI's targets ask for few points per mask (min(⌈area/g_p⌉, m_p)); a scale
    spends a larger budget where the same map points."""
    spread_radius: int = 0
    """``multinomial`` only: draw points one at a time, each ruling out the grid points within this
    Chebyshev distance of it, so a small budget is not spent on neighbours that prompt the same SAM
    mask (0: plain draws without replacement)."""
    min_points: int = 1
    """Never prompt with fewer points (an empty prompt set yields no masks at all)."""
    max_points: int | None = None
    """Cap on sampled points (None: no cap)."""
    seed: int = 0
    """Seed of the sampling generator (per-image generators derive from it)."""

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampling.sampler {self.sampler!r} not in {SAMPLERS}")
        if self.budget_scale <= 0:
            raise ValueError(f"sampling.budget_scale {self.budget_scale} must be > 0")
        if self.spread_radius < 0:
            raise ValueError(f"sampling.spread_radius {self.spread_radius} must be >= 0")
        if self.spread_radius and self.sampler != "multinomial":
            raise ValueError(f"sampling.spread_radius needs sampler multinomial, not {self.sampler!r}")
        if self.min_points < 0 or (self.max_points is not None and self.max_points < self.min_points):
            raise ValueError(
                f"sampling.min_points {self.min_points} must be >= 0 and <= max_points {self.max_points}"
            )


@dataclass(frozen=True, kw_only=True)
class PromptingConfig:
    """SAM prompted with points, batched through the mask decoder (``SamAutomaticMaskGenerator``)."""

    points_per_batch: int = 64
    """Points per mask-decoder batch."""
    pred_iou_thresh: float = 0.5
    """Drop masks whose predicted IoU is lower (SAM's own default 0.88 is tuned for ViT-H)."""
    stability_score_thresh: float = 0.7
    """Drop masks whose stability score is lower (SAM's default 0.95)."""
    box_nms_thresh: float = 0.7
    """Box IoU above which duplicate masks are suppressed."""
    random_points: int | None = None
    """Budget of the ``random`` baseline; None: the same number of points TSPP sampled for that image."""
    sparse_pred_iou_thresh: float | None = None
    """``pred_iou_thresh`` for the sparse modes (tspp, random); None: the same as the grid's. A few
    dozen points leave no spare masks to filter away, so the sparse modes may keep weaker ones."""
    sparse_box_nms_thresh: float | None = None
    """``box_nms_thresh`` for the sparse modes; None: the same as the grid's."""

    def __post_init__(self) -> None:
        if self.points_per_batch < 1:
            raise ValueError(f"prompting.points_per_batch {self.points_per_batch} must be >= 1")
        for name in (
            "pred_iou_thresh", "stability_score_thresh", "box_nms_thresh",
            "sparse_pred_iou_thresh", "sparse_box_nms_thresh",
        ):  # fmt: skip
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"prompting.{name} {value} outside [0, 1]")

    def for_mode(self, mode: str) -> PromptingConfig:
        """The settings ``mode`` prompts SAM with: the sparse overrides for tspp and random."""
        if mode not in SPARSE_MODES:
            return self
        pred_iou, nms = self.sparse_pred_iou_thresh, self.sparse_box_nms_thresh
        return replace(
            self,
            pred_iou_thresh=self.pred_iou_thresh if pred_iou is None else pred_iou,
            box_nms_thresh=self.box_nms_thresh if nms is None else nms,
        )


@dataclass(frozen=True, kw_only=True)
class AggregationConfig:
    """SMAgg: merge SAM masks into the class whose coarse mask covers most of them."""

    alpha: float = 0.5
    """Merge mask i into class k when |M_i ∩ M_k| / |M_i| > alpha (SAM-MI: 0.5)."""
    eps: float = 1e-6
    """Keeps the score finite for an empty SAM mask."""
    keep_coarse_when_unmatched: bool = True
    """A class no SAM mask matched keeps its coarse mask instead of coming out empty."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha < 1.0:
            raise ValueError(f"aggregation.alpha {self.alpha} must be in [0, 1)")


@dataclass(frozen=True, kw_only=True)
class Text4SegRefineConfig:
    """Text4Seg's reference refiner: mask prompt + random positive/negative points, fed back."""

    num_points: int = 10
    """Positive points, and as many negative ones, drawn from the upsampled coarse mask."""
    iterations: int = 3
    """SAM calls; each after the first gets the previous low-res logits as the mask prompt."""
    eps: float = 1e-3
    """Coarse mask → logits ±log((1−eps)/eps) for the first mask prompt."""

    def __post_init__(self) -> None:
        if self.num_points < 0 or self.iterations < 1:
            raise ValueError(
                f"text4seg.num_points {self.num_points} must be >= 0 and iterations {self.iterations} >= 1"
            )


@dataclass(frozen=True, kw_only=True)
class PointsConfig(Config):
    """Sparse point refinement as a whole."""

    mode: str = "tspp"
    """Key in ``stsam_refiner.points.prompting.POINT_SOURCES`` or ``text4seg``: which prompts SAM gets."""
    targets: TargetConfig = field(default_factory=TargetConfig)
    """Probability targets (training) and the candidate grid (inference)."""
    prompter: PrompterConfig = field(default_factory=PrompterConfig)
    """Trainable TSPP head."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    """Point sampling at inference."""
    prompting: PromptingConfig = field(default_factory=PromptingConfig)
    """SAM mask generation from points."""
    aggregation: AggregationConfig = field(default_factory=AggregationConfig)
    """SMAgg."""
    text4seg: Text4SegRefineConfig = field(default_factory=Text4SegRefineConfig)
    """The Text4Seg-style baseline."""

    def __post_init__(self) -> None:
        if self.mode not in POINT_MODES:
            raise ValueError(f"points.mode {self.mode!r} not in {POINT_MODES}")
