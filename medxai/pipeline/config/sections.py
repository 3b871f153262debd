"""The sections of a study config, one pydantic model each (the ``methods`` entries: ``method_spec.py``).

Every section forbids unknown keys; a value that does not validate becomes a
problem led by its dotted key (see :func:`medxai._validation.problem_lines`). ``configs/study.yaml``
documents every key with its default.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from medxai._validation import (
    Name,
    NonNegativeInt,
    OptionalName,
    Percent,
    PositiveInt,
    PositiveNumber,
    StrictBool,
    UnitInterval,
    did_you_mean,
    is_frame,
    is_int,
    is_word,
    non_empty_name,
    null_is_empty,
    one_of,
    optional_section,
    problem_lines,
    show_value,
    validation_error,
    validation_errors,
)
from medxai.errors import SAVED_MODEL_IS_CODE, ConfigError
from medxai.heatmap import ClipSpec, HeatmapPolicy
from medxai.pipeline.config.validators import existing_path, to_path
from medxai.preprocess import PreprocessSpec, ScaleStats, WindowSpec  # noqa: F401 - config section types
from medxai.viz.outline_spec import OutlineSpec


def _known_formats() -> dict[str, bool]:
    """Every registered output format (:mod:`medxai.io.formats`), and whether it is written by default."""
    from medxai.io.formats import output_formats  # deferred: the io package loads every image reader

    return {name: fmt.default for name, fmt in output_formats().items()}


def _default_formats() -> tuple[str, ...]:
    """The formats written when the config names none."""
    return tuple(name for name, default in _known_formats().items() if default)


MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Section):
    """The classifier to explain."""

    path: Path = Field(description="A .keras or .h5 file, or a SavedModel directory.")
    output: Name = Field(default="logits", description="'logits', 'probabilities' or the name of a layer to explain.")
    output_kind: Annotated[
        Literal["auto", "logits", "probabilities"], BeforeValidator(one_of("auto", "logits", "probabilities"))
    ] = Field(
        default="auto",
        description="What the model's final output is: 'auto' (proved from the graph, else witnessed by its "
        "values on the study), 'logits' (e.g. trained with from_logits=True) or 'probabilities'.",
    )
    activation: Annotated[
        Literal["softmax", "sigmoid"] | None, BeforeValidator(one_of("softmax", "sigmoid", none=True))
    ] = Field(
        default=None,
        description="How the logits of a model without a softmax/sigmoid head become the probabilities of "
        "scores, thresholds and 'predicted': 'softmax' or 'sigmoid' (multi-label); None: sigmoid for one "
        "output unit, softmax for several.",
    )
    class_names: tuple[str, ...] | None = Field(
        default=None,
        description="One name per class (a list, or a .txt file with one per line / a .json list); "
        "None: classes are numbers.",
    )
    custom_objects: tuple[str, ...] | None = Field(
        default=None,
        description="'package.module:NAME' (or a list): custom layers/objects the model needs to load. Runs that code.",
    )
    trust_saved_model: StrictBool = Field(
        default=False,
        description="Load a TensorFlow SavedModel folder. A SavedModel is code (its graph can run any "
        "TensorFlow op, e.g. write files): only set true for models you trust.",
    )

    @model_validator(mode="after")
    def _check_trust(self) -> ModelSection:
        if self.path.is_dir() and not self.trust_saved_model:
            raise validation_error("", (("path",), SAVED_MODEL_IS_CODE.format(path=self.path)))
        return self

    @field_validator("class_names", mode="before")
    @classmethod
    def _check_class_names(cls, value: Any, info: ValidationInfo) -> tuple[str, ...] | None:
        if value is None:
            return None
        if isinstance(value, (str, os.PathLike)):
            value = _names_file(existing_path(value, info, "file"))
        if not isinstance(value, (list, tuple)) or not value:
            raise validation_error(f"expected a non-empty list of names or a file of names, got {show_value(value)}")
        problems: list[tuple[tuple[str | int, ...], str]] = []
        names: list[str] = []
        for i, name in enumerate(value):
            text = str(name).strip() if isinstance(name, (str, int)) and not isinstance(name, bool) else ""
            if not text:
                problems.append(((i,), f"expected a non-empty name, got {show_value(name)}"))
            elif text in names:
                problems.append(((i,), f"duplicate class name {text!r} (also at {names.index(text)})"))
            elif ";" in text:
                problems.append(((i,), f"a class name cannot hold ';' (it separates labels), got {text!r}"))
            names.append(text)
        if problems:
            raise validation_errors(problems)
        return tuple(names)

    @field_validator("custom_objects", mode="before")
    @classmethod
    def _check_custom_objects(cls, value: Any) -> tuple[str, ...] | None:
        if value is None:
            return None
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items:
            raise validation_error(f"expected 'package.module:NAME' or a list of them, got {show_value(value)}")
        problems: list[tuple[tuple[str | int, ...], str]] = [
            ((i,), f"expected 'package.module:NAME', got {show_value(item)}")
            for i, item in enumerate(items)
            if not (isinstance(item, str) and re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", item.strip()))
        ]
        if problems:
            raise validation_errors(problems)
        return tuple(item.strip() for item in items)

    @field_validator("path", mode="before")
    @classmethod
    def _check_path(cls, value: Any, info: ValidationInfo) -> Path:
        path = to_path(value, info)
        if not path.exists():
            raise validation_error(f"file or directory not found: {path}")
        if path.is_dir():
            if not any((path / name).is_file() for name in ("saved_model.pb", "saved_model.pbtxt")):
                raise validation_error(f"directory is not a SavedModel (no saved_model.pb): {path}")

        elif path.suffix.lower() not in MODEL_SUFFIXES:
            raise validation_error(f"expected a .keras or .h5 file or a SavedModel directory, got {path.name!r}")
        return path


def _names_file(path: Path) -> list[Any]:
    """Class names from a file: a JSON list (``.json``) or one name per line (blank lines skipped)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise validation_error(f"cannot read {path}: {err}") from None
    if path.suffix.lower() == ".json":
        try:
            names = json.loads(text)
        except ValueError as err:
            raise validation_error(f"{path} is not valid JSON: {err}") from None
        if not isinstance(names, list):
            raise validation_error(f"{path} must hold a JSON list of names, got {type(names).__name__}")
        return names
    return [line.strip() for line in text.splitlines() if line.strip()]


#: The default ``data.max_pixels``: 2**27 values (512 MiB as float32), e.g. a 512^3 CT volume or an 11585^2 image.
MAX_PIXELS = 1 << 27  # = medxai.io.limits.DEFAULT_MAX_PIXELS (the config imports no reader)


def _delimiter(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in ("tab", "\\t"):
        return "\t"
    if not isinstance(value, str) or len(value) != 1 or value in '\r\n"':
        raise validation_error(
            f"expected one character (e.g. ',', ';', tab) or null to sniff it, got {show_value(value)}"
        )
    return value


class TopKTargets(_Section):
    """``targets: {top_k: K}``: the K classes the model scores highest, per image."""

    top_k: PositiveInt


class ThresholdTargets(_Section):
    """``targets: {threshold: T}``: every class whose probability is at least T, per image."""

    threshold: UnitInterval


class RegionTargets(_Section):
    """``targets: {region: ..., channels: [...], reduce: sum}``: regions of a segmentation model's output.

    Each (image, channel) explains the region score: the sum (or mean) of the channel's
    logits over the region (see :mod:`medxai.regions`).
    """

    region: Literal["predicted", "connected", "border", "manifest", "all"] = Field(
        description="predicted: where the model predicts the channel; connected: each connected component of "
        "it (largest first); border: its inside border; manifest: the mask file of data.region_column; "
        "all: the whole channel."
    )
    channels: tuple[int | str, ...] | None = Field(
        default=None, description="Output channels by index or model.class_names; None: every channel but 0."
    )
    reduce: Literal["sum", "mean"] = "sum"
    components: PositiveInt | None = Field(
        default=None, description="With region: connected, keep the N largest components; None: all."
    )

    @field_validator("channels", mode="before")
    @classmethod
    def _check_channels(cls, value: Any) -> Any:
        if value is None:
            return value
        if is_int(value) or isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not value:
            raise validation_error(f"expected a list of channel indices or class names, got {show_value(value)}")
        return class_list(value, "channel")


def class_list(value: list[Any] | tuple[Any, ...], what: str = "class") -> tuple[int | str, ...]:
    """Classes (or channels) by index or name, checked: non-negative integers or non-empty names, no duplicates.

    Raises:
        ValidationError: every bad entry, by position.
    """
    problems: list[tuple[tuple[int | str, ...], str]] = []
    seen: list[Any] = []
    for i, item in enumerate(value):
        if isinstance(item, str) and item.strip():
            item = item.strip()
        elif not is_int(item) or item < 0:
            problems.append(((i,), f"expected a non-negative {what} index or a class name, got {show_value(item)}"))
            continue
        if item in seen:
            problems.append(((i,), f"duplicate {what} {item!r}"))
        seen.append(item if isinstance(item, str) else int(item))
    if problems:
        raise validation_errors(problems)
    return tuple(seen)


class DataSection(_Section):
    """The dataset manifest and the columns to read from it."""

    manifest: Path | Any = Field(
        description="The manifest file listing one image per row, or (from Python) a pandas DataFrame of its rows; "
        "a DataFrame's relative paths resolve against data.root, else the current directory."
    )
    path_column: Name = "path"
    id_column: OptionalName = Field(default=None, description="None: the row number is the id.")
    label_column: OptionalName = None
    mask_column: OptionalName = None
    region_column: OptionalName = Field(
        default=None,
        description="Column of region mask paths (NIfTI, PNG, NPY, DICOM SEG) that a segmentation model's "
        "targets: {region: manifest} explains; empty cells: nothing to explain for that image.",
    )
    series_column: OptionalName = Field(
        default=None, description="Column of DICOM SeriesInstanceUIDs, for paths that are folders of several series."
    )
    delimiter: Annotated[str | None, BeforeValidator(_delimiter)] = Field(
        default=None, description="The manifest's column separator (one character); None: sniffed from the file."
    )
    encoding: Name = Field(default="utf-8", description="The manifest's text encoding, e.g. utf-8, latin-1, utf-16.")
    max_pixels: PositiveInt = Field(
        default=MAX_PIXELS,
        description="The largest image read, in values (rows x columns x frames x samples per pixel, from "
        "the file's header, before decoding); bigger images are error rows. Bounds a run's memory.",
    )
    on_corrupt: Literal["error", "warn"] = Field(
        default="error",
        description="Malformed compressed pixel data (an RLE segment that decodes to more or fewer bytes than the "
        "frame needs, a truncated or overlong JPEG/JPEG 2000 codestream, data past the declared frames, a "
        "decoder reporting it malformed): error, an error row naming the file and what is wrong; warn, explained "
        "as a decoder read it, with a warning saying which decoder and what is wrong.",
    )
    root: Path | None = Field(
        default=None,
        validate_default=True,
        description="Folder that relative image paths resolve against; None: the manifest's folder.",
    )

    @field_validator("manifest", mode="before")
    @classmethod
    def _check_manifest(cls, value: Any, info: ValidationInfo) -> Any:
        if is_frame(value):  # its rows are checked as a file's are, when read (medxai.io.read_manifest)
            return value
        return existing_path(value, info, "file")

    @field_validator("root", mode="before")
    @classmethod
    def _check_root(cls, value: Any, info: ValidationInfo) -> Path | None:
        if value is None:
            manifest = info.data.get("manifest")
            if is_frame(manifest):  # no file: the validation's base folder (a mapping's: the current directory)
                return to_path(".", info)
            return manifest.parent if manifest is not None else None
        return existing_path(value, info, "directory")


# The preprocessing settings are the library's (one schema): the config's ``preprocess:``
# section is a medxai.preprocess.PreprocessSpec (window: a WindowSpec, scale: a ScaleStats).
PreprocessSection = PreprocessSpec


# The map policy is the library's (one schema): the config's ``heatmap:`` section is a
# medxai.heatmap.HeatmapPolicy, its ``heatmap.clip:`` a medxai.heatmap.ClipSpec.
ClipSection = ClipSpec
HeatmapSection = HeatmapPolicy


class MontageSection(_Section):
    """Which slices a volume's montage (the png and overlay pictures) shows.

    Attributes:
        slices: ``top_mass``: the ``n`` slices holding the most map mass, the peak voxel's
            slice always among them; ``even``: ``n`` evenly spaced slices, the peak's slice
            replacing the nearest; ``all``: every slice. Shown in slice order, numbered.
        n: The number of slices (``top_mass``, ``even``).
    """

    slices: Annotated[Literal["top_mass", "even", "all"], BeforeValidator(one_of("top_mass", "even", "all"))] = (
        "top_mass"
    )
    n: PositiveInt = 16


class DisplaySection(_Section):
    """How pictures show a map's values (png, overlay, ortho; the npy, nifti and dicom maps never change).

    Attributes:
        transform: ``gamma``: raise to the power ``gamma`` (the peak stays the only value at 1);
            ``percentile``: divide by the map's ``percentile``-th percentile, clip at 1 (noise
            reaches the top colour where the signal covers under ``100 - percentile`` %);
            ``none``: as the map is.
        percentile: The clipping percentile (``percentile``).
        gamma: The exponent (``gamma``; below 1 brightens faint values).
    """

    transform: Annotated[
        Literal["percentile", "gamma", "none"], BeforeValidator(one_of("percentile", "gamma", "none"))
    ] = "gamma"
    percentile: Percent = 99.0
    gamma: PositiveNumber = 0.5


class OutputSection(_Section):
    """Where and how maps are written."""

    #: The outline settings are the library's (one schema): ``medxai.viz.render.OutlineSpec``.
    Outline: ClassVar[type[OutlineSpec]] = OutlineSpec

    dir: Path = Field(description="Output folder (created if missing).")
    formats: tuple[str, ...] = Field(default_factory=_default_formats)
    colormap: Name = "inferno"
    alpha: UnitInterval = 0.5
    max_size: PositiveInt = Field(
        default=2048,
        description="Longest side of the PNG and overlay pictures in pixels, their colour bar aside (bigger "
        "maps are shrunk for pictures only; npy, nifti and dicom stay exact).",
    )
    overlay_outline: OutlineSpec | None = Field(
        default=None,
        description="None: no outlines; a mapping (true: all defaults) outlines the strongest regions.",
    )
    montage: MontageSection = Field(default_factory=MontageSection)
    display: DisplaySection = Field(default_factory=DisplaySection)

    _check_overlay_outline = field_validator("overlay_outline", mode="before")(
        optional_section(
            OutlineSpec,
            "null, true or a mapping {top_percent: .., cleanup: .., radius: .., min_size: .., color: .., only: ..}",
            switch=True,
        )
    )

    @model_serializer(mode="wrap")
    def _omit_no_outline(self, handler: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        # Left out when off, so configs (and resume fingerprints) from before the key existed are unchanged.
        data = handler(self)
        if data.get("overlay_outline", ...) is None:
            del data["overlay_outline"]
        return data

    @field_validator("dir", mode="before")
    @classmethod
    def _check_dir(cls, value: Any, info: ValidationInfo) -> Path:
        path = to_path(value, info)
        if path.exists() and not path.is_dir():
            raise validation_error(f"exists and is not a directory: {path}")
        return path

    @field_validator("formats", mode="before")
    @classmethod
    def _check_formats(cls, value: Any) -> tuple[str, ...]:
        known = tuple(_known_formats())  # every registered format, at validation time
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not value:
            raise validation_error(f"expected a non-empty list of {', '.join(known)}, got {show_value(value)}")
        problems: list[tuple[tuple[str | int, ...], str]] = []
        seen: set[str] = set()
        for i, fmt in enumerate(value):
            key = fmt.strip().lower() if isinstance(fmt, str) else fmt
            if key not in known:
                hint = did_you_mean(key, known, inside=True)
                problems.append(((i,), f"unknown format {show_value(fmt)} (known: {', '.join(known)}{hint})"))
            elif key in seen:
                problems.append(((i,), f"duplicate format '{key}'"))
            seen.add(key)
        if problems:
            raise validation_errors(problems)
        return tuple(f.strip().lower() for f in value)

    @field_validator("colormap", mode="before")
    @classmethod
    def _check_colormap(cls, value: Any) -> str:
        name = non_empty_name(value)
        try:
            from matplotlib import colormaps
        except ImportError:  # pragma: no cover - matplotlib is a dependency
            return name
        if name not in colormaps:
            raise validation_error(f"unknown matplotlib colormap '{name}'{did_you_mean(name, sorted(colormaps))}")
        return name


_SCHEDULER_ADDRESS = re.compile(r"^(?:(?:tcp|tls|ucx|ws|wss)://)?(?:\[[0-9A-Fa-f:.]+\]|[^\s/:\[\]]+)(?::\d+)?$")


def _dask_address(value: Any) -> str:
    if is_word(value, "local"):
        return "local"
    if isinstance(value, str) and _SCHEDULER_ADDRESS.match(value.strip()):
        address = value.strip()
        return address if "://" in address else f"tcp://{address}"
    raise validation_error(
        f"expected 'local' or a Dask scheduler address such as tcp://host:8786, got {show_value(value)}"
    )


class DaskSection(_Section):
    """Where ``runtime.executor: dask`` computes (``medxai.pipeline.executors.DaskExecutor``)."""

    address: Annotated[str, BeforeValidator(_dask_address)] = "local"
    workers: PositiveInt = 2
    partition_size: PositiveInt = 32
    timeout: PositiveNumber = 30.0


class RuntimeSection(_Section):
    """How the run is executed."""

    batch_size: PositiveInt = 32
    seed: NonNegativeInt = 0
    resume: StrictBool = True
    progress: StrictBool = True
    overlap_io: StrictBool = True
    jit: StrictBool = False
    precision: Annotated[Literal["float32", "mixed"], BeforeValidator(one_of("float32", "mixed"))] = "float32"
    executor: Annotated[Literal["local", "dask"], BeforeValidator(one_of("local", "dask"))] = "local"
    dask: DaskSection = Field(default_factory=DaskSection)
    read_timeout: PositiveNumber = Field(
        default=120.0,
        description="Seconds one image may take to read and decode before it is an error row (the read "
        "itself finishes in the background).",
    )
    max_abandoned_reads: PositiveInt = Field(
        default=2,  # = medxai.io.limits.DEFAULT_MAX_ABANDONED_READS
        description="The most reads past read_timeout that may still run in the background, holding their "
        "memory: a read starts only while fewer reads run (abandoned or not; overlap_io reads two at once), "
        "waiting up to 10 x read_timeout for one to end, else its image is an error row.",
    )

    _empty_dask = field_validator("dask", mode="before")(null_is_empty)


class EvaluateSection(_Section):
    """Quality figures computed right after the run, the same as ``medxai evaluate RUN_DIR``.

    Attributes:
        faithfulness: Compute deletion/insertion curves (one batched model pass per step) and ROAD
            (:func:`medxai.metrics.road.road_score`: nine imputed removals per map).
        road: With ``faithfulness``, also ROAD (nine sparse solves per map: about 0.2 s for a
            64 x 64 map and 4 s for 224 x 224 on one core; ``false`` skips it on large studies).
        baseline: What deleted pixels become: ``"blur"`` or ``"zeros"`` (model input space).
        step_percent: Pixels removed or inserted per curve step, in percent.
        topk_percent: The top-k region of the map for IoU with the mask, in percent.
        sanity_images: Images in the randomisation check (0 skips it).
        sanity_threshold: A method fails the check when a mean Spearman
            correlation of its maps with the trained model's (signed or of
            absolute values), after randomising every layer, is still at or
            above this in magnitude. 0.5 is medxai's convention: Adebayo et
            al. (2018) set no threshold.
        sanity_seeds: Random re-initialisations the check averages over
            (figures: mean and standard deviation over seeds).
    """

    faithfulness: StrictBool = True
    road: StrictBool = True
    baseline: Annotated[Literal["blur", "zeros"], BeforeValidator(one_of("blur", "zeros"))] = "blur"
    step_percent: Percent = 5.0
    topk_percent: Percent = 5.0
    sanity_images: NonNegativeInt = 4
    sanity_threshold: UnitInterval = 0.5
    sanity_seeds: PositiveInt = 3


class EvaluationSpec(EvaluateSection):
    """What :func:`medxai.pipeline.evaluation.evaluate_run` computes: the ``evaluate`` section plus a seed.

    The one schema of an evaluation: built from keywords (``EvaluationSpec(step_percent=10)``)
    it validates them as the config does, and a bad value raises :class:`ConfigError`
    naming its key (``"step_percent: expected a percentage in (0, 100], got 0"``).

    Attributes:
        seed: Seed of the first re-initialisation of the sanity check (then ``seed + 1``, ...);
            a run's evaluation uses ``runtime.seed``.
    """

    model_config = ConfigDict(frozen=True)

    seed: NonNegativeInt = 0

    def __init__(self, /, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(problem_lines(exc, type(self))) from None
