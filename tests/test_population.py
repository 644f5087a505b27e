"""Populations: members trained side by side equal lone runs, one file holds them, a label-free
criterion picks one and the run ends with it exported as a serving checkpoint."""

import json
import math

import pytest
import torch
from test_train import SMALL_FLAGS, assert_same_weights, run_cli, small_config

import training.loop as loop
from models.checkpoint import CheckpointError, load_checkpoint, load_population, read_metadata, save_population
from training.align import rotate_codes, served_effects
from training.classifier import load_classifier
from training.export import main as export_main
from training.loop import MODEL_NAME, TrainConfig, train
from training.losses import jitter
from training.select import (
    REASONS,
    MemberScores,
    agreement,
    category_probabilities,
    choose,
    flip_copies,
    information,
    jitter_flips,
    near_best,
    score_members,
    shows_slant_and_width,
)
from training.train import main as train_main


def member_weights(path, k: int, *, rotation: list[list[float]] | None = None) -> dict[str, torch.Tensor]:
    """Member k's weights; with a `rotation`, as the export turns its codes (training.align)."""
    member = load_population(path)[k]
    if rotation is not None:
        member = rotate_codes(member, torch.tensor(rotation))
    return {
        **{f"g.{name}": value for name, value in member.generator.state_dict().items()},
        **{f"d.{name}": value for name, value in member.discriminator.state_dict().items()},
    }


def test_a_population_trains_each_member_as_a_lone_run_of_its_seed_would(tmp_path):
    population = train(small_config(tmp_path / "population", steps=6, seed=5, population=2))
    for k, seed in enumerate((5, 6)):
        alone = train(small_config(tmp_path / f"seed{seed}", steps=6, seed=seed))
        assert_same_weights(member_weights(population, k), member_weights(alone, 0))


def test_one_file_holds_every_member_with_its_seed_metrics_and_the_chosen_one(tmp_path):
    path = train(small_config(tmp_path, steps=10, eval_every=5, population=3, select="information"))
    members = load_population(path)
    assert [m.meta["seed"] for m in members] == [0, 1, 2]
    assert all(m.meta["step"] == 10 for m in members)
    scores = [m.meta["metrics"]["information"] for m in members]
    assert read_metadata(path)["chosen_member"] == max(range(3), key=scores.__getitem__)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert sorted(r["member"] for r in records if "categorical_accuracy" in r) == [0, 0, 1, 1, 2, 2]
    assert sorted(p.name for p in (tmp_path / "samples").iterdir())[-3:] == [
        f"step_0000010_member{k}.png" for k in range(3)
    ]
    with pytest.raises(CheckpointError, match="holds a population of members"):
        load_checkpoint(path)  # a serving-style load names the way out: export one member


@pytest.mark.parametrize("align_codes", [True, False])
def test_the_run_ends_with_the_chosen_member_exported_for_serving(tmp_path, align_codes):
    path = train(small_config(tmp_path, steps=10, population=2, align_codes=align_codes))
    chosen = read_metadata(path)["chosen_member"]
    model = load_checkpoint(tmp_path / MODEL_NAME)
    assert model.stored_dtype == torch.float16
    assert "optimizers" not in read_metadata(tmp_path / MODEL_NAME)  # a serving file: networks and metadata only
    assert "chosen_member" not in model.meta and model.meta["step"] == 10
    assert model.meta["seed"] == chosen
    # its codes may be turned (training.align: code_rotation says how); --keep-codes keeps them as trained
    rotation = model.meta.get("code_rotation")
    assert rotation is None or align_codes
    chosen_weights = {k: v.half().float() for k, v in member_weights(path, chosen, rotation=rotation).items()}
    exported = member_weights(tmp_path / MODEL_NAME, 0)
    assert chosen_weights.keys() == exported.keys()
    assert all(torch.allclose(chosen_weights[k], exported[k].float(), atol=1e-3) for k in exported)  # fp16
    names = [code.name for code in model.latent.continuous]  # named by what they do where that is clear
    assert list(model.meta["metrics"]["continuous"]) == names and len(names) == 2  # slant and width per code


def test_export_picks_the_chosen_member_or_the_one_asked_for(tmp_path, capsys):
    path = train(small_config(tmp_path / "run", steps=4, population=2))
    chosen = read_metadata(path)["chosen_member"]
    assert export_main([str(path), str(tmp_path / "default.safetensors")]) == 0
    assert load_checkpoint(tmp_path / "default.safetensors").meta["seed"] == chosen
    assert export_main([str(path), str(tmp_path / "other.safetensors"), "--member", str(1 - chosen)]) == 0
    assert load_checkpoint(tmp_path / "other.safetensors").meta["seed"] == 1 - chosen
    assert export_main([str(path), str(tmp_path / "none.safetensors"), "--member", "2"]) == 2
    assert "--member 2 is not one of its members 0..1" in capsys.readouterr().err


# --- successive halving -------------------------------------------------------------------------


def halving_config(out_dir, **changes):
    """Three members, 8 steps an epoch (2048 synthetic images, batches of 256), halved after one."""
    return small_config(out_dir, population=3, batch_size=256, halve_after=1, checkpoint_every=4, **changes)


def test_halving_stops_the_least_informative_member_where_it_stood_and_chooses_among_the_rest(tmp_path):
    path = train(halving_config(tmp_path / "run", steps=12))
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    information_at_8 = {r["member"]: r["information"] for r in records if r["step"] == 8 and "information" in r}
    (dropped,) = next(r["dropped_members"] for r in records if "dropped_members" in r)
    assert dropped == min(information_at_8, key=information_at_8.get)  # the least informative Q
    members = load_population(path)
    assert [m.meta.get("dropped_at") for m in members] == [8 if k == dropped else None for k in range(3)]
    trained = [
        r["step"] for r in records if r.get("member") == dropped and ("loss_d" in r or "categorical_accuracy" in r)
    ]
    assert max(trained) == 8  # no training, and no evaluation, after
    (last_read,) = [r for r in records if r.get("member") == dropped and "agreement" in r]
    assert last_read["continuous"] is None and last_read["information"] is not None  # what halving read, only
    stopped = train(small_config(tmp_path / "alone", steps=8, batch_size=256, seed=dropped))
    assert_same_weights(member_weights(path, dropped), member_weights(stopped, 0))  # weights as they were then
    assert read_metadata(path)["chosen_member"] != dropped


def test_a_run_resumed_across_its_halving_halves_alike(tmp_path):
    straight = train(halving_config(tmp_path / "straight", steps=12))
    first = train(halving_config(tmp_path / "resumed", steps=8))  # ends exactly where halving comes
    resumed = train(halving_config(tmp_path / "resumed", steps=12), resume=True)
    assert first == resumed
    assert [m.meta.get("dropped_at") for m in load_population(resumed)] == [
        m.meta.get("dropped_at") for m in load_population(straight)
    ]
    for k in range(3):
        assert_same_weights(member_weights(resumed, k), member_weights(straight, k))


def test_population_arguments_are_checked_before_training(tmp_path, monkeypatch):
    result = run_cli("--population", "0", "--out", str(tmp_path / "zero"))
    assert result.returncode == 2 and "--population: must be a positive integer or auto, got 0" in result.stderr
    result = run_cli("--population", "1", "--halve-after", "2", "--out", str(tmp_path / "alone"))  # nothing to halve
    assert (
        result.returncode == 2 and "halving needs a population of at least 2 (--population K), got 1" in result.stderr
    )

    monkeypatch.setattr(loop, "free_memory", lambda device: 1 << 20)  # a device with 1 MiB free
    with pytest.raises(ValueError, match=r"population 4 needs at least .* GiB more .* 0.0 GiB free"):
        train(small_config(tmp_path / "huge", steps=2, population=4))
    assert not (tmp_path / "huge" / "checkpoint.safetensors").exists()


def test_the_default_population_is_chosen_by_device(capsys):
    assert loop.auto_population(torch.device("cuda"), world_size=1) == (16, 2)  # cheap there: 16, halved
    assert loop.auto_population(torch.device("cpu"), world_size=1) == (4, 2)  # each member costs its time
    assert loop.auto_population(torch.device("cuda"), world_size=2) == (1, None)  # torchrun shares one member
    for argv, expected in [
        ([], (4, 2)),
        (["--population", "auto", "--halve-after", "3"], (4, 3)),  # a halving given wins
        (["--population", "3"], (3, None)),
    ]:
        assert train_main(["--dry-run", "--device", "cpu", *argv]) == 0
        config = json.loads(capsys.readouterr().out)
        assert (config["population"], config["halve_after"]) == expected


# --- the label-free criteria ---------------------------------------------------------------------


def test_information_is_highest_for_a_q_that_is_certain_and_uses_every_category():
    digits = torch.arange(1000) % 10
    certain = torch.nn.functional.one_hot(digits, 10).float()  # (N, 10): each image one category
    assert information(certain) == pytest.approx(math.log(10), abs=1e-5)

    # Digits 4 and 9 merged: their images spread over two categories, half and half.
    merged = certain.clone()
    for digit, categories in ((4, (4, 9)), (9, (4, 9))):
        merged[digits == digit] = 0
        merged[(digits == digit).nonzero()[:, 0][:, None], torch.tensor(categories)] = 0.5
    assert information(merged) < information(certain)

    unsure = torch.full((1000, 10), 0.1)  # no idea about any image
    collapsed = torch.nn.functional.one_hot(torch.zeros(1000, dtype=torch.long), 10).float()  # one category
    assert information(unsure) == pytest.approx(0, abs=1e-6)
    assert information(collapsed) == pytest.approx(0, abs=1e-6)


def test_jitter_flips_is_the_share_of_images_whose_category_the_jitter_changes():
    digits = torch.arange(1000) % 10
    certain = torch.nn.functional.one_hot(digits, 10).float()
    assert jitter_flips(certain, certain) == 0  # read alike, jittered or not

    # 4s and 9s split by slant into two categories: a jitter that slants carries half of them across
    crossing = ((digits == 4) | (digits == 9)) & (torch.arange(1000) % 20 < 10)
    jittered = certain.clone()
    jittered[crossing] = certain[crossing].flip(1)  # another category, as confident
    assert jitter_flips(certain, jittered) == pytest.approx(0.1)


def test_the_flip_copies_are_one_fixed_draw_of_the_default_jitter():
    images = torch.rand(16, 1, 28, 28) * 2 - 1
    copies = flip_copies(images)
    assert torch.equal(copies, flip_copies(images))  # every member and evaluation reads the same copies
    rotated_and_shifted = TrainConfig(jitter_degrees=15.0, jitter_pixels=2.0, jitter_shear=0.0)
    assert torch.equal(copies, jitter(images, torch.Generator().manual_seed(0), rotated_and_shifted))
    assert not torch.equal(copies, images)


def test_agreement_scores_the_member_whose_categories_others_share_highest():
    digits = torch.arange(1000) % 10
    relabelled = (digits * 3 + 1) % 10  # the same grouping, other category numbers
    merged = digits.clone()
    merged[digits == 9] = 4  # 4s and 9s share a category...
    merged[(digits == 4) & (torch.arange(1000) % 20 < 10)] = 9  # ...and the 4s are split by "style"
    scores = agreement([digits, relabelled, merged], categories=10)
    assert scores[0] == scores[1] > scores[2]
    with pytest.raises(ValueError, match="at least two"):
        agreement([digits], categories=10)


def test_scores_read_q_on_real_images_and_flips_against_their_copies(tmp_path):
    members = load_population(train(small_config(tmp_path, steps=4, population=3)))
    discriminators, latent = [m.discriminator for m in members], members[0].latent
    images = torch.rand(64, 1, 28, 28) * 2 - 1
    scores = score_members(discriminators, latent, images)
    assert all(0 <= s.information <= math.log(10) + 1e-6 and 0 <= s.agreement <= 1 for s in scores)
    assert all(s.jitter_flips is None for s in scores)  # no copies, no flips read
    assert all(s.jitter_flips == 0 for s in score_members(discriminators, latent, images, images.clone()))
    mirrored = images.flip(3)
    assert [s.jitter_flips for s in score_members(discriminators, latent, images, mirrored)] == [
        jitter_flips(category_probabilities(d, latent, images), category_probabilities(d, latent, mirrored))
        for d in discriminators
    ]


def test_choose_picks_the_highest_criterion_and_agreement_needs_three_members():
    scores = [MemberScores(2.1, 0.80), MemberScores(2.2, 0.70), MemberScores(2.0, 0.90)]
    assert choose(scores, "information") == 1
    assert choose(scores, "agreement") == 2
    assert choose(scores[:2], "agreement") == 1  # two members agree equally: information decides
    with pytest.raises(ValueError, match="criterion must be one of information, agreement, codes, flips"):
        choose(scores, "accuracy")


def effects(*codes: tuple[float, float]) -> dict[str, dict[str, float]]:
    """Measured effects of continuous codes c1, c2, ... from (slant rho, width rho) pairs."""
    return {f"c{j + 1}": {"slant_spearman": s, "width_spearman": w} for j, (s, w) in enumerate(codes)}


def test_the_paper_figure_needs_one_code_for_slant_and_another_for_width():
    assert shows_slant_and_width(effects((-0.97, 0.2), (0.4, 0.93)))
    assert shows_slant_and_width(effects((0.5, -0.95), (1.0, -0.9)))  # each moves both: still one of each
    assert not shows_slant_and_width(effects((0.99, 0.1), (0.95, 0.3)))  # two slant codes
    assert not shows_slant_and_width(effects((0.95, 0.95), (0.1, 0.1)))  # one code doing both is not two
    assert not shows_slant_and_width(effects((0.99, 0.1)))


def test_a_code_that_broadens_the_digit_is_a_width_code_too():
    # the paper's width figure: a narrow digit turns broad while its strokes thicken only a little
    broadens = {"slant_spearman": 0.3, "width_spearman": 0.66, "breadth_spearman": 0.99}
    assert shows_slant_and_width({"c1": {"slant_spearman": 1.0, "width_spearman": 0.2}, "c2": broadens})
    assert not shows_slant_and_width(
        {"c1": {"slant_spearman": 1.0, "width_spearman": 0.2}, "c2": {**broadens, "breadth_spearman": 0.8}}
    )


def test_codes_prefers_a_near_best_member_whose_codes_show_slant_and_width():
    two_slants, figure = effects((0.99, 0.1), (0.95, 0.3)), effects((-0.97, 0.2), (0.4, 0.93))
    scores = [MemberScores(2.236, None), MemberScores(2.233, None), MemberScores(2.200, None)]
    assert choose(scores, "information") == 0
    assert choose(scores, "codes", [two_slants, figure, figure]) == 1  # 0.003 nats below: a tie, with both codes
    assert choose(scores, "codes", [two_slants, two_slants, figure]) == 0  # a merge's 0.036 is no tie
    assert choose(scores, "codes", [figure, figure, figure]) == 0  # among equals, information decides
    assert choose(scores, "codes", None) == 0  # codes not measured: information decides


def test_flips_picks_the_member_a_small_jitter_moves_least_preferring_one_with_slant_and_width_among_ties():
    two_slants, figure = effects((0.99, 0.1), (0.95, 0.3)), effects((-0.97, 0.2), (0.4, 0.93))
    # information ties the merge (member 0) with the others; its flips do not
    scores = [MemberScores(2.1797, None, 0.054), MemberScores(2.1796, None, 0.020), MemberScores(2.17, None, 0.023)]
    assert choose(scores, "information") == 0
    assert choose(scores, "flips") == 1
    assert choose(scores, "flips", [figure, two_slants, figure]) == 2  # 0.003 more: a tie, with both codes
    assert choose(scores, "flips", [figure, two_slants, two_slants]) == 1  # the merge's 0.034 is no tie
    assert near_best(scores, "flips") == [1, 2]
    unread = [MemberScores(s.information, None) for s in scores]
    assert choose(unread, "flips") == 0  # flips not read: information decides


@pytest.mark.parametrize("select", ["codes", "flips"])
def test_a_run_chooses_from_the_scores_it_records_and_the_codes_as_served(tmp_path, capsys, select):
    path = train(small_config(tmp_path, steps=4, population=3, select=select))
    members = load_population(path)
    metrics = [m.meta["metrics"] for m in members]
    scores = [MemberScores(m["information"], m["agreement"], m["jitter_flips"]) for m in metrics]
    served = [
        served_effects(member, load_classifier(), m["continuous"]) for member, m in zip(members, metrics, strict=True)
    ]
    assert read_metadata(path)["chosen_member"] == choose(scores, select, served)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    logged = [r for r in records if "agreement" in r]  # what the choice read, in the log too (after the evaluations)
    assert [(r["member"], r["information"], r["jitter_flips"], r["continuous"]) for r in logged] == [
        (k, m["information"], m["jitter_flips"], m["continuous"]) for k, m in enumerate(metrics)
    ]
    assert records[-1]["chosen_member"] == read_metadata(path)["chosen_member"]
    report = capsys.readouterr().out
    assert f"({REASONS[select]}, no labels used)" in report
    assert "information agreement  flips accuracy" in report


def test_a_run_picks_by_jitter_flips_unless_told_otherwise():
    assert TrainConfig().select == "flips"


@pytest.mark.parametrize(("select", "align_codes"), [("codes", True), ("codes", False), ("flips", True)])
def test_a_run_reads_the_codes_of_its_near_best_members_as_it_would_serve_them(
    tmp_path, monkeypatch, select, align_codes
):
    asked = []

    def served(checkpoint, classifier, trained):  # as if only seed 1's codes showed the figure once turned
        asked.append(checkpoint.meta["seed"])
        return effects((-0.97, 0.2), (0.4, 0.93)) if checkpoint.meta["seed"] == 1 else trained

    monkeypatch.setattr(loop, "served_effects", served)
    path = train(small_config(tmp_path, steps=4, population=3, select=select, align_codes=align_codes))
    metrics = [m.meta["metrics"] for m in load_population(path)]
    near = near_best([MemberScores(m["information"], None, m["jitter_flips"]) for m in metrics], select)
    if align_codes:
        assert sorted(asked) == sorted(near)  # only the near-best, and all of them
        assert read_metadata(path)["chosen_member"] == (1 if 1 in near else near[0])
    else:  # --keep-codes serves the codes as trained, so the choice reads them so
        assert asked == []


def test_a_failing_selection_loses_no_training(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("selection failed")

    monkeypatch.setattr(loop, "select_member", broken)
    with pytest.raises(RuntimeError, match="selection failed"):
        train(small_config(tmp_path, steps=7, checkpoint_every=5, population=2))
    assert read_metadata(tmp_path / "checkpoint.safetensors")["step"] == 7


def test_export_of_a_population_that_chose_nothing_asks_for_a_member(tmp_path, capsys):
    path = train(small_config(tmp_path / "run", steps=7, checkpoint_every=5, population=2))
    members = load_population(path)
    for member in members:
        member.meta.pop("chosen_member")
    save_population(path, members, {"step": 7})
    assert export_main([str(path), str(tmp_path / "model.safetensors")]) == 2
    assert "chose no member yet; pick one with --member" in capsys.readouterr().err


def test_a_resumed_run_refuses_to_change_what_it_was_started_with(tmp_path):
    flags = ["--dataset", "synthetic", "--batch-size", "32", "--noise-dim", "16", *SMALL_FLAGS]
    assert run_cli(*flags, "--steps", "2", "--population", "2", "--out", str(tmp_path)).returncode == 0
    result = run_cli("--resume", "--out", str(tmp_path), "--steps", "4", "--population", "3")
    assert result.returncode == 2
    assert "--population 3 differs from its 2" in result.stderr
