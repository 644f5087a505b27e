"""Bodies of the REST API (docs/design.md, "REST API"); requests carry the bounds that hold for any model.

Checks that depend on the chosen checkpoint or on the settings (list lengths, category ranges,
the value cap, scale and grid limits) happen in backend/latents.py and answer in the same
422 format, naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.latent import MAX_SEED

Finite = Annotated[float, Field(allow_inf_nan=False)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
CHECKPOINT_FIELD = Field(None, max_length=200, description="a name from /api/checkpoints; default: the first")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FixedCodes(_Request):
    checkpoint: str | None = CHECKPOINT_FIELD
    categorical: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, max_length=64, description="one category index per categorical code; default: 0 each"
    )
    continuous: list[Finite] | None = Field(
        None, max_length=256, description="one value per continuous code; default: 0 each; |value| <= the value cap"
    )
    label: str | None = Field(
        None,
        max_length=40,
        description="instead of categorical: the digit to draw, by its label (one of category_labels in "
        "/api/checkpoints); sets the first categorical code to the category that learned it, any others to 0",
    )
    scale: int = Field(1, ge=1, description="integer nearest-neighbour upscaling, at most the scale cap")

    @model_validator(mode="after")
    def _categorical_or_label(self) -> Self:
        if self.categorical is not None and self.label is not None:
            raise ValueError("give either categorical (category indices) or label, not both")
        return self


class Noise(_Request):
    seed: Seed | None = Field(None, description="noise seed (default 0); the same seed gives the same noise")
    noise: list[Finite] | None = Field(
        None, max_length=4096, description="an explicit noise vector of noise_dim values, instead of seed"
    )

    @model_validator(mode="after")
    def _seed_or_noise(self) -> Self:
        if self.seed is not None and self.noise is not None:
            raise ValueError("give either seed or noise, not both")
        return self


class CodeRef(_Request):
    kind: Literal["categorical", "continuous"]
    index: int = Field(0, ge=0, description="which code of that kind, from 0")


class Sweep(_Request):
    """The code that changes along a grid row or a GIF, and its values."""

    vary: CodeRef = Field(default_factory=lambda: CodeRef(kind="continuous", index=0), description="the code to sweep")
    values: list[Finite] | None = Field(
        None,
        max_length=1024,
        description="explicit values (category indices for a categorical code); "
        "default: start..stop in steps for a continuous code, every category for a categorical one",
    )
    start: Finite = -2.0
    stop: Finite = 2.0
    steps: int = Field(9, ge=1, le=1024)


class GenerateRequest(FixedCodes, Noise):
    """One image: `POST /generate`, or `GET /generate` with the same fields as query parameters."""

    sha256: str | None = Field(
        None,
        min_length=8,
        max_length=64,
        description="the checkpoint file's sha256, or its first 8 or more characters, as /api/checkpoints lists "
        "it: when the file was replaced since, the answer is 409, so a cached picture never outlives its file",
    )

    model_config = ConfigDict(json_schema_extra={"examples": [{"label": "5", "seed": 3, "scale": 4}]})


class GridRequest(FixedCodes, Sweep):
    """Rows of noise seeds x columns of one code's values: the paper's figure 2."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"label": "7", "rows": 5, "vary": {"kind": "continuous", "index": 0}}]}
    )

    seeds: list[Seed] | None = Field(None, min_length=1, max_length=1024, description="one noise seed per row")
    rows: int | None = Field(None, ge=1, le=1024, description="instead of seeds: seeds 0..rows-1; default 10")

    @model_validator(mode="after")
    def _seeds_or_rows(self) -> Self:
        if self.seeds is not None and self.rows is not None:
            raise ValueError("give either seeds or rows, not both")
        return self


class GifRequest(FixedCodes, Noise, Sweep):
    """One frame per value of the swept code: an animated traversal of one noise vector, or of
    several seeds side by side (the traversal grid as an animation)."""

    seeds: list[Seed] | None = Field(
        None,
        min_length=1,
        max_length=1024,
        description="instead of seed or noise: one noise seed per picture, side by side",
    )

    @model_validator(mode="after")
    def _one_noise_source(self) -> Self:
        if self.seeds is not None and (self.seed is not None or self.noise is not None):
            raise ValueError("give one of seed, noise or seeds")
        return self

    model_config = ConfigDict(json_schema_extra={"examples": [{"label": "2", "seed": 1, "steps": 17, "scale": 3}]})

    duration_ms: int = Field(100, ge=20, le=5000, description="how long each frame shows")
    bounce: bool = Field(True, description="play the sweep forward then back, so the loop has no jump")


class InterpolationRequest(FixedCodes):
    """A strip of pictures whose noise moves from one seed's to another's, the codes fixed: what
    the noise holds besides the codes, and how smoothly G's output follows it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"seeds": [3, 8], "label": "2", "steps": 7, "scale": 2}]})

    seeds: list[Seed] = Field(min_length=2, max_length=2, description="the seeds at the two ends")
    steps: int = Field(9, ge=2, le=1024, description="pictures in the strip, both ends included")


class CodeEffect(BaseModel):
    """What one continuous code measurably does, from the checkpoint's metrics (sweeps of the code
    from -2 to 2, training/evaluate.py): the text the page shows beside its slider."""

    name: str = Field(description="the code's name, as in latent.continuous")
    effect: Literal["slant", "width", "mixed", "unmeasured"] = Field(
        description="the effect the code clearly drives: |rank correlation| >= 0.9 with slant, or with one of width's "
        "two measures (stroke thickness, breadth), and a swing at least twice each of the other effect's "
        "(without swings, their |rank correlation| < 0.5); mixed when none is clear, unmeasured without metrics"
    )
    description: str = Field(description="one line for a person")
    slant_spearman: float | None = Field(None, description="rank correlation of the code's value with slant")
    width_spearman: float | None = Field(None, description="rank correlation with stroke thickness (ink mass)")
    breadth_spearman: float | None = Field(
        None, description="rank correlation with breadth (the ink's horizontal spread, slant taken out)"
    )
    identity_kept: float | None = Field(None, description="share of swept images that keep their digit")
    slant_swing: float | None = Field(
        None, description="change of slant over the sweep, in standard deviations of real digits' slant"
    )
    width_swing: float | None = Field(None, description="change of stroke thickness over the sweep, likewise")
    breadth_swing: float | None = Field(None, description="change of breadth over the sweep, likewise")


class CheckpointInfo(BaseModel):
    """One entry of `GET /api/checkpoints`; the page builds its controls from `latent`."""

    name: str
    dataset: str | None
    image: dict[str, int]  # channels, height, width
    latent: dict[str, Any]  # models.LatentSpec.to_dict(): noise_dim, categorical, continuous
    metrics: dict[str, Any]
    category_labels: list[str] | None = None  # the digit each category of the first code learned
    continuous_effects: list[CodeEffect] = []  # one per continuous code, in latent order
    step: int | None = None
    sha256: str
    run: str | None = None  # the training run whose latest checkpoint this is (GET /api/runs)


class Limits(BaseModel):
    """`GET /api/limits`: the bounds requests are checked against, so that a client (the page)
    reads them instead of copying them."""

    max_seed: int = Field(description="the largest noise seed")
    value_cap: float = Field(description="the largest |value| of a continuous code or of noise")
    max_scale: int = Field(description="the largest upscaling factor")
    max_grid: int = Field(description="the most rows, and the most columns, of a grid")
    grid_pad: int = Field(description="pixels between a grid's cells and around them, at scale 1")
    max_frames: int = Field(description="the most frames of a GIF")
    max_side: int = Field(description="the most pixels on either side of an answer image")
    max_body_bytes: int = Field(description="the largest request body")
    max_image_pixels: int = Field(description="the most pixels (width x height) of an image sent to /encode")


class CategoricalEstimate(BaseModel):
    name: str | None
    probabilities: list[float]
    argmax: int
    label: str | None  # category_labels[argmax] for the first code of a checkpoint that has them


class ContinuousEstimate(BaseModel):
    name: str | None
    mean: float
    std: float | None  # None unless the model was trained with --learn-std (Q then predicts a std)


class FitResult(BaseModel):
    """`POST /encode?fit=true`: noise and codes with which `POST /generate` redraws the image."""

    noise: list[float] = Field(description="noise_dim values: send as `noise` to POST /generate")
    categorical: list[int] = Field(description="Q's category per categorical code, kept as read")
    continuous: list[float] = Field(description="Q's continuous codes, refined by the fit")
    steps: int = Field(description="gradient steps taken through G")
    pixel_error_before: float = Field(
        description="mean absolute difference in grey levels (0..255) between the image, laid out as Q "
        "reads it, and G's picture of Q's codes with the seed's noise"
    )
    pixel_error_after: float = Field(description="the same for G's picture of the fitted noise and codes")


class EncodeResponse(BaseModel):
    checkpoint: str
    categorical: list[CategoricalEstimate]
    continuous: list[ContinuousEstimate]
    fit: FitResult | None = None  # with ?fit=true


class MemberInfo(BaseModel):
    member: int
    losses: dict[str, float] = Field(description="latest loss_d, loss_g, info_cat, info_cont")
    categorical_accuracy: float | None = Field(None, description="latest, on the test images (needs labels)")
    information: float | None = Field(None, description="latest label-free reading (training/select.py)")
    jitter_flips: float | None = Field(
        None,
        description="latest share of real images whose category a small jitter changes (the default pick reads it)",
    )
    stopped_at: int | None = Field(None, description="the step at which halving stopped its training, if it did")


class RunInfo(BaseModel):
    """One entry of `GET /api/runs`: a training run folder, as its files tell it."""

    name: str = Field(description="the folder's path below the runs folder")
    state: Literal["running", "finished", "stopped", "failed"] = Field(
        description="finished: the log ends with the run's end; running: the log keeps growing; once it is "
        "quiet, stopped (a checkpoint to resume from) or failed (none)"
    )
    step: int
    total_steps: int | None
    train_seconds: float | None = Field(description="the training clock, evaluation and saving left out")
    images_per_s: float | None
    losses: dict[str, float] = Field(
        description="latest loss_d, loss_g, info_cat, info_cont (in a population: the first member still training)"
    )
    categorical_accuracy: float | None
    chosen_member: int | None = Field(description="of a finished run: the member it exported")
    members: list[MemberInfo] = Field(description="of a population: each member's latest figures")
    sample: str | None = Field(description="the newest sample grid's file name, None before the first")
    updated: float | None = Field(description="Unix time of the log's last record")
