"""ganlib.pretrained: shipped runs load only when they match, are verified, and hold what training logged."""

import json

import pytest
import torch

from ganlib import dcgan, pretrained, train

SHAPE, Z, WIDTH = (1, 28, 28), 16, 8
RECIPE = dict(batch_size=8, width=WIDTH)


def make_state(width=WIDTH, seed=0):
    torch.manual_seed(seed)
    G, D = dcgan.Generator(SHAPE, Z, width), dcgan.Discriminator(SHAPE, width)
    return train.GANState.with_ema(G, D, *dcgan.optimizers(G, D))


def finished_run(tmp_path, steps=6):
    """A tiny DCGAN run trained through fit with a recipe, its checkpoint at checkpoints/07_x/run.pt."""
    images = torch.rand(64, *SHAPE) * 2 - 1
    from ganlib.data import ImageSet

    state = make_state()
    ckpt = tmp_path / "checkpoints" / "07_x" / "run.pt"
    z_fixed = torch.randn(4, Z)
    train.fit(state, *train.gan_steps(state.G, state.D, state.opt_G, state.opt_D, ImageSet(images, torch.zeros(64, dtype=torch.long), ("x",), "noise"), 8),
              steps, log_every=2, ema_beta=0.9, snapshot=lambda: state.G_ema(z_fixed), snapshot_every=3,
              checkpoint=ckpt, recipe=RECIPE, progress=False)
    return state, ckpt


@pytest.fixture
def shipped(tmp_path):
    """(the trained state, its checkpoint path, the folder of shipped weights holding its packed run)."""
    state, ckpt = finished_run(tmp_path)
    out = tmp_path / "weights"
    key, entry = pretrained.pack(ckpt, out, minutes=0.1, device="test")
    pretrained.write_manifest({key: entry}, out)
    return state, ckpt, out


def within_a_step(loaded: torch.Tensor, trained: torch.Tensor) -> bool:
    """Within half an 8-bit step of the tensor's largest value: what per-row int8 (or half) storage allows."""
    return float((loaded - trained).abs().max()) <= float(trained.abs().max()) / 254 * 1.001 + 1e-6


def test_pack_then_restore_gives_the_trained_generator_to_8_bits_and_the_history(shipped, capsys):
    trained, ckpt, out = shipped
    fresh = make_state(seed=1)
    assert pretrained.restore(ckpt, fresh, 6, RECIPE, out)
    assert "loaded the shipped weights 07_x/run.pt" in capsys.readouterr().out
    assert fresh.step == 6 and fresh.history.steps == trained.history.steps
    assert fresh.history.values == trained.history.values
    assert [s for s, _ in fresh.history.snapshots] == [0, 3, 6]
    for (_, a), (_, b) in zip(fresh.history.snapshots, trained.history.snapshots):  # 8-bit images: within a level
        assert a.dtype == torch.float32 and (a - b.clamp(-1, 1)).abs().max() <= 1 / 255 + 1e-6
    for a, b in zip(fresh.G_ema.state_dict().values(), trained.G_ema.state_dict().values()):
        assert a.dtype == b.dtype  # back in the model's dtype
        assert within_a_step(a, b) if b.is_floating_point() else torch.equal(a, b)
    for a, b in zip(fresh.G.parameters(), fresh.G_ema.parameters()):  # G is not shipped: it copies G_ema
        assert torch.equal(a, b)
    for a, b in zip(fresh.D.parameters(), trained.D.parameters()):
        assert within_a_step(a, b)
    stored = torch.load(out / "07_x" / "run.pt")["models"]
    assert sorted(k for k, v in stored["G_ema"].items() if not isinstance(v, torch.Tensor)) == \
        sorted(k for k, v in trained.G_ema.state_dict().items() if v.numel() >= 4096 and v.dim() > 1), \
        "the kernels of 4,096 values or more, and only those, should be stored as 8-bit integers"


def test_compact_storage_by_size_half_int8_rows_and_6_bit_groups():
    torch.manual_seed(0)
    small, kernel, big = torch.randn(64) * 0.1, torch.randn(32, 16, 4, 4) * 0.02, torch.randn(1024, 1024) * 0.02
    assert pretrained._encode(small).dtype == torch.float16
    k = pretrained._encode(kernel)
    assert k["int8"].dtype == torch.int8 and k["int8"].shape == (32, 256)  # a scale per output row
    row_max = kernel.flatten(1).abs().amax(1)
    err = (pretrained._decode(k) - kernel).flatten(1).abs().amax(1)
    assert (err <= row_max / 254 * 1.001).all()
    b = pretrained._encode(big)
    assert b["packed"].numel() == big.numel() * 6 // 8 and b["scale"].numel() == big.numel() // 64
    group_max = big.reshape(-1, 64).abs().amax(1)
    err = (pretrained._decode(b) - big).reshape(-1, 64).abs().amax(1)
    assert (err <= group_max / 62 * 1.01).all()  # half a step of 31 levels each side
    assert float((pretrained._decode(b) - big).norm() / big.norm()) < 0.03
    assert pretrained._decode(pretrained._encode(torch.tensor([3, 4]))).tolist() == [3, 4]  # integers as they are


def test_6_bit_packing_matches_numpys_little_endian_bit_stream():
    import numpy as np

    levels = torch.randint(0, 64, (800,))
    packed = pretrained._pack_bits(levels, 6)
    bits = np.unpackbits(packed.numpy(), bitorder="little").reshape(-1, 6)  # value i: bits 6i .. 6i + 5
    assert (bits @ (1 << np.arange(6)) == levels.numpy()).all()
    assert torch.equal(pretrained._unpack_bits(packed, 6), levels)


def test_the_manifest_pins_the_file_by_sha256_and_records_the_recipe_with_its_steps(shipped):
    _, _, out = shipped
    entry = pretrained.manifest(out)["07_x/run"]
    assert entry["sha256"] == pretrained.sha256(out / entry["file"])
    assert entry["recipe"] == {"batch_size": 8, "width": WIDTH, "steps": 6}
    assert set(entry["fingerprint"]) == {"G_ema", "D"}
    assert json.loads((out / "manifest.json").read_text())["runs"]["07_x/run"] == entry


def test_a_different_recipe_or_an_unknown_run_trains_instead(shipped, capsys):
    _, ckpt, out = shipped
    state = make_state(seed=1)
    before = [p.clone() for p in state.G.parameters()]
    assert not pretrained.restore(ckpt, state, 12, RECIPE, out)  # more steps asked for
    assert "steps=6 (this run: 12)" in capsys.readouterr().out
    assert not pretrained.restore(ckpt, state, 6, {**RECIPE, "batch_size": 16}, out)
    assert not pretrained.restore(ckpt.with_name("other.pt"), state, 6, RECIPE, out)
    assert "no shipped weights for 07_x/other" in capsys.readouterr().out
    assert state.step == 0 and all(torch.equal(a, b) for a, b in zip(before, state.G.parameters()))


def test_one_changed_byte_is_a_clear_error_naming_the_file_and_the_fix(shipped):
    _, ckpt, out = shipped
    path = out / "07_x" / "run.pt"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(pretrained.ShippedWeightsError, match=r"run\.pt is corrupt.*make weights"):
        pretrained.restore(ckpt, make_state(), 6, RECIPE, out)


def test_a_missing_file_is_a_clear_error(shipped):
    _, ckpt, out = shipped
    (out / "07_x" / "run.pt").unlink()
    with pytest.raises(pretrained.ShippedWeightsError, match="missing"):
        pretrained.restore(ckpt, make_state(), 6, RECIPE, out)


def test_a_mismatched_architecture_is_a_clear_error_not_random_weights(shipped):
    _, ckpt, out = shipped
    wider = make_state(width=2 * WIDTH)  # the recipe says WIDTH, but the code built something else
    with pytest.raises(pretrained.ShippedWeightsError, match="architecture changed.*pretrained=False"):
        pretrained.restore(ckpt, wider, 6, RECIPE, out)


def test_fit_with_pretrained_loads_and_writes_no_checkpoint(shipped, tmp_path, monkeypatch):
    trained, ckpt, out = shipped
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", out)
    ckpt.unlink()
    state = make_state(seed=1)
    calls = []
    history = train.fit(state, lambda: calls.append("D") or {}, lambda: calls.append("G") or {}, 6,
                        checkpoint=ckpt, recipe=RECIPE, pretrained=True, progress=False)
    assert calls == [] and not ckpt.exists() and history.steps == trained.history.steps
    with pytest.raises(ValueError, match="recipe"):
        train.fit(make_state(), lambda: {}, lambda: {}, 6, checkpoint=ckpt, pretrained=True, progress=False)


def test_pack_refuses_an_unfinished_or_recipe_less_checkpoint(tmp_path):
    state = make_state()
    from ganlib import checkpoint

    checkpoint.save(tmp_path / "07_x" / "plain.pt", state)
    with pytest.raises(ValueError, match="not a finished run with a recipe"):
        pretrained.pack(tmp_path / "07_x" / "plain.pt", tmp_path / "w")


def test_recipes_compare_after_a_json_round_trip_and_refuse_objects():
    assert pretrained.recipe_of(5, {"sizes": (1, 2)}) == json.loads(json.dumps(pretrained.recipe_of(5, {"sizes": (1, 2)})))
    with pytest.raises(TypeError, match="plain values"):
        pretrained.recipe_of(5, {"device": torch.device("cpu")})


def test_fingerprints_see_shapes_not_values():
    a, b = make_state(seed=0).G.state_dict(), make_state(seed=1).G.state_dict()
    assert pretrained.fingerprint(a) == pretrained.fingerprint(b)
    assert pretrained.fingerprint(a) != pretrained.fingerprint(make_state(width=2 * WIDTH).G.state_dict())


def test_kept_generators_ship_evenly_spaced_and_load_into_a_generator(tmp_path):
    state, ckpt = finished_run(tmp_path, steps=8)
    kept = {}
    for step in (2, 4, 6, 8):  # what dcgan.keep_generators writes along a run
        torch.manual_seed(step)
        G = dcgan.Generator(SHAPE, Z, WIDTH)
        torch.save(G.state_dict(), dcgan.generator_path(ckpt.parent, "run", step))
        kept[step] = G
    out = tmp_path / "weights"
    key, entry = pretrained.pack(ckpt, out, kept=(0.5,))
    pretrained.write_manifest({key: entry}, out)
    assert entry["kept"] == [4, 8]  # 8: the run's G_ema, not stored twice
    shipped = pretrained.kept_generators(ckpt, 8, RECIPE, out)
    assert list(shipped) == [4, 8]
    G = dcgan.Generator(SHAPE, Z, WIDTH)
    G.load_state_dict(shipped[4])
    for a, b in zip(G.parameters(), kept[4].parameters()):
        assert within_a_step(a, b)
    assert pretrained.kept_generators(ckpt, 9, RECIPE, out) is None  # another recipe: none
    local = dcgan.kept_weights(ckpt.parent, "run", 8, RECIPE, device="cpu")  # the files saved along the run
    assert list(local) == [2, 4, 6, 8] and torch.equal(local[6]["net.0.weight"], kept[6].state_dict()["net.0.weight"])
    elsewhere = tmp_path / "lab" / "07_x"  # a lab without the run's files: what the course ships, if asked for
    assert dcgan.kept_weights(elsewhere, "run", 8, RECIPE, weights_dir=out) == {}
    from_shipped = dcgan.kept_weights(elsewhere, "run", 8, RECIPE, pretrained=True, weights_dir=out)
    assert list(from_shipped) == [4, 8] and dcgan.kept_weights(elsewhere, "run", 9, RECIPE, True, weights_dir=out) == {}
    assert pretrained.shipped_steps(ckpt, out) == 8 and pretrained.shipped_steps(ckpt.with_name("x.pt"), out) is None
    with pytest.raises(ValueError, match="no kept generators at steps"):
        pretrained.pack(ckpt, out, kept=(0.375,))  # step 3: none was kept there


def test_a_deck_gets_the_shipped_run_first_then_the_labs_own_finished_checkpoint(shipped, tmp_path):
    _, ckpt, out = shipped
    assert pretrained.lesson_run(ckpt, make_state(seed=1), 6, RECIPE, out) == "shipped weights"
    assert pretrained.lesson_run(ckpt, make_state(seed=1), 6, RECIPE, tmp_path / "none") == "lab checkpoint"
    assert pretrained.lesson_run(ckpt, make_state(seed=1), 7, RECIPE, tmp_path / "none") is None  # unfinished


def test_finished_run_tells_a_shippable_checkpoint_from_the_rest():
    recipe = {"steps": 6, "batch_size": 4}
    assert pretrained.finished_run({"step": 6, "meta": {"recipe": recipe}})
    assert not pretrained.finished_run({"step": 5, "meta": {"recipe": recipe}})  # stopped early
    assert not pretrained.finished_run({"step": 6, "meta": {}})                  # no recipe
    assert not pretrained.finished_run({"step": 6})
    assert not pretrained.finished_run({"net.0.weight": torch.zeros(2)})       # a kept generator: a bare state dict


def test_lesson_07s_gpu_profile_loads_the_shipped_toys():
    """Its toys run on the CPU with one recipe in the cpu and gpu profiles: their runs are named without the
    profile, and the gpu profile loads them by default (it once retrained them on the CPU for half an hour)."""
    import ast

    import nbformat

    from ganlib import wgan

    cells = [c.source for c in nbformat.read(pretrained.WEIGHTS_DIR.parents[2] / "notebooks" / "07_wgan_gp.ipynb",
                                             as_version=4).cells if c.cell_type == "code" and "%pip" not in c.source]
    setup = next(ast.parse(s) for s in cells if "PRESETS = {" in s)
    def assigns(name):
        return [n for n in setup.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == name]

    namespace = {"wgan": wgan}
    exec(compile(ast.Module(assigns("PRESETS"), []), "07", "exec"), namespace)
    toy = lambda profile: {k: v for k, v in namespace["PRESETS"][profile].items() if k.startswith(("toy_", "clip"))}  # noqa: E731
    assert toy("gpu") == toy("cpu")
    (resolve,) = assigns("toy_pretrained")
    for profile, expected in (("gpu", True), ("cpu", True), ("smoke", False)):
        scope = {"profile": profile, "pretrained": None}
        exec(compile(ast.Module([resolve], []), "07", "exec"), scope)
        assert scope["toy_pretrained"] is expected, profile
    train_toy = next(n for s in cells for n in ast.parse(s).body if isinstance(n, ast.FunctionDef) and n.name == "train_toy")
    tag = next(n for n in ast.walk(train_toy) if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "tag")
    assert "profile" not in {n.id for n in ast.walk(tag.value) if isinstance(n, ast.Name)}
    toys = [k for k in pretrained.manifest() if k.startswith("07_wgan_gp/toy-")]
    assert toys and not any(f"-{p}-" in k for k in toys for p in ("cpu", "gpu", "smoke"))


def test_a_column_measured_after_training_ships_in_the_history(tmp_path):
    """The FID of generators kept along a long run, measured afterwards, travels in the shipped history
    (the lessons draw FID against minutes from it); a step that was never logged is refused."""
    state, ckpt = finished_run(tmp_path)
    logged = state.history.steps  # 2, 4, 6
    out = tmp_path / "weights"
    key, entry = pretrained.pack(ckpt, out, columns={"FID": {2: 30.0, 6: 12.5}})
    pretrained.write_manifest({key: entry}, out)
    fresh = make_state()
    pretrained.load_into(entry, fresh, out)
    steps, fids = fresh.history.series("FID")
    assert logged == [2, 4, 6] and steps == [2, 6] and fids == [30.0, 12.5]
    assert fresh.history.series("loss_D")[0] == logged  # the other columns are untouched
    with pytest.raises(ValueError, match=r"steps \[5\] were not logged"):
        pretrained.pack(ckpt, out, columns={"FID": {5: 1.0}})
