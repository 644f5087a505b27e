"""Specification of models.sample: the paper's figure grids, as codes and as PNG files."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from models.checkpoint import Checkpoint, build_networks, save_checkpoint
from models.latent import CategoricalCode, ContinuousCode, LatentSpec
from models.networks import ArchConfig
from models.sample import main, traversal_codes

# 3 categories x 4 seeds, two continuous codes (one unnamed): small grids written out by hand.
SPEC = LatentSpec(
    noise_dim=5,
    categorical=(CategoricalCode(3, "shape"),),
    continuous=(ContinuousCode(name="width"), ContinuousCode()),
)
SEEDS = [11, 12, 13, 14]
VALUES = [-2.0, 0.0, 0.5]
TINY = ArchConfig(name="tiny", g_fc=32, g_conv=16, d_conv=8, d_fc=32, q_fc=16)
PAD = 2  # models.render.tile's default padding


# --- traversal_codes: one row per category, one column per seed or value ----------------------


def test_seed_grid_has_a_row_per_category_and_a_column_per_seed() -> None:
    codes = traversal_codes(SPEC, seeds=SEEDS)

    assert codes.z.shape == (3 * 4, 5)
    assert codes.c_cat.shape == (3 * 4, 1)
    assert codes.c_cont.shape == (3 * 4, 2)


def test_seed_grid_row_r_has_category_r() -> None:
    codes = traversal_codes(SPEC, seeds=SEEDS)

    assert codes.c_cat[:, 0].view(3, 4).tolist() == [[0] * 4, [1] * 4, [2] * 4]


def test_seed_grid_column_j_has_seed_js_noise() -> None:
    z = traversal_codes(SPEC, seeds=SEEDS).z.view(3, 4, 5)  # (rows, columns, noise_dim)

    for column, seed in enumerate(SEEDS):
        for row in range(3):
            assert torch.equal(z[row, column], SPEC.noise(seed)[0]), (row, column)


def test_seed_grid_keeps_continuous_codes_at_0() -> None:
    assert (traversal_codes(SPEC, seeds=SEEDS).c_cont == 0).all()


@pytest.mark.parametrize("code", [0, 1])
def test_value_grid_varies_only_continuous_code_k_across_columns(code: int) -> None:
    c_cont = traversal_codes(SPEC, seeds=SEEDS, values=VALUES, code=code).c_cont.view(3, 3, 2)  # (rows, cols, codes)

    assert (c_cont[..., code] == torch.tensor(VALUES)).all()  # every row runs through the values
    assert (c_cont[..., 1 - code] == 0).all()


@pytest.mark.parametrize("code", [0, 1])
def test_value_grid_uses_the_first_seeds_noise_everywhere(code: int) -> None:
    z = traversal_codes(SPEC, seeds=SEEDS, values=VALUES, code=code).z

    assert z.shape == (3 * 3, 5)
    assert (z == SPEC.noise(SEEDS[0])).all()


def test_value_grid_row_r_has_category_r() -> None:
    codes = traversal_codes(SPEC, seeds=SEEDS, values=VALUES, code=0)

    assert codes.c_cat[:, 0].view(3, 3).tolist() == [[0] * 3, [1] * 3, [2] * 3]


def test_only_the_first_categorical_code_varies_across_rows() -> None:
    spec = LatentSpec(noise_dim=2, categorical=(CategoricalCode(3), CategoricalCode(4)), continuous=())

    codes = traversal_codes(spec, seeds=[0, 1])

    assert codes.c_cat[:, 0].tolist() == [0, 0, 1, 1, 2, 2]
    assert (codes.c_cat[:, 1] == 0).all()


def test_without_a_categorical_code_the_grid_is_one_row() -> None:
    spec = LatentSpec(noise_dim=2, categorical=(), continuous=(ContinuousCode(),))

    codes = traversal_codes(spec, seeds=[0, 1, 2])

    assert codes.z.shape == (3, 2)
    assert codes.c_cat.shape == (3, 0)


def test_grid_codes_build_a_valid_generator_input() -> None:
    codes = traversal_codes(SPEC, seeds=SEEDS, values=VALUES, code=1)

    assert SPEC.build_input(codes).shape == (3 * 3, SPEC.input_dim)


# --- main: PNG files from a checkpoint --------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    generator, discriminator = build_networks(SPEC, TINY)
    return save_checkpoint(tmp_path / "model.safetensors", Checkpoint(SPEC, TINY, generator, discriminator))


def grid_size(rows: int, cols: int, scale: int) -> tuple[int, int]:
    """PIL's (width, height) of a tiled grid of 28x28 images."""
    return (cols * (28 + PAD) + PAD) * scale, (rows * (28 + PAD) + PAD) * scale


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def test_main_writes_the_category_grid_and_one_traversal_per_continuous_code(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "samples"

    assert main([str(checkpoint), "--out", str(out), "--scale", "1"]) == 0

    # The unnamed second code is called by its position, c2.
    assert sorted(p.name for p in out.iterdir()) == ["categories.png", "traverse_c2.png", "traverse_width.png"]


@pytest.mark.parametrize(
    ("filename", "cols"),
    [
        ("categories.png", 10),  # ten noise seeds
        ("traverse_width.png", 9),  # values -2, -1.5, ..., 2
        ("traverse_c2.png", 9),
    ],
)
@pytest.mark.parametrize("scale", [1, 2])
def test_main_figure_size_follows_rows_columns_padding_and_scale(
    checkpoint: Path, tmp_path: Path, filename: str, cols: int, scale: int
) -> None:
    out = tmp_path / "samples"

    main([str(checkpoint), "--out", str(out), "--scale", str(scale)])

    assert image_size(out / filename) == grid_size(rows=3, cols=cols, scale=scale)


def test_main_gives_the_same_bytes_for_the_same_checkpoint_and_seed(checkpoint: Path, tmp_path: Path) -> None:
    main([str(checkpoint), "--out", str(tmp_path / "a"), "--seed", "3", "--scale", "1"])
    main([str(checkpoint), "--out", str(tmp_path / "b"), "--seed", "3", "--scale", "1"])

    for name in ("categories.png", "traverse_width.png", "traverse_c2.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_main_on_a_missing_checkpoint_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "absent.safetensors"

    code = main([str(missing), "--out", str(tmp_path / "samples")])

    err = capsys.readouterr().err
    assert code == 2
    assert str(missing) in err
    assert "Traceback" not in err
    assert not (tmp_path / "samples").exists()
