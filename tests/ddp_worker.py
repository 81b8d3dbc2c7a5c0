"""Scenarios of ganlib.distributed, run by tests/test_distributed.py under torchrun (gloo, CPU) and, for the
references, in the test's own single process. Usage: torchrun --standalone --nproc_per_node=2 tests/ddp_worker.py OUT

Each scenario writes what it produced to OUT/<scenario>-rank<r>.pt; the test compares.
"""

import sys
from pathlib import Path

import torch

from ganlib import distributed, layers, losses, train

B, Z, STEPS = 8, 3, 5  # global batch, latent size, steps


def toy_state(batch_norm: bool = False, seed: int = 0) -> train.GANState:
    torch.manual_seed(seed)
    G = layers.mlp(Z, 2, hidden=16, depth=2).double()
    D = layers.mlp(2, 1, hidden=16, depth=2, batch_norm=batch_norm).double()
    opt_G, opt_D = train.adam(G, D, 1e-2, betas=(0.5, 0.9))
    return train.GANState.with_ema(G, D, opt_G, opt_D)


def fixed_batch(step: int, kind: str) -> torch.Tensor:
    """The global batch of ``step``: the same on every rank and in the reference."""
    g = torch.Generator().manual_seed(1000 * step + {"real": 1, "z": 2, "eps": 3}[kind])
    shape = {"real": (B, 2), "z": (B, Z), "eps": (B, 1)}[kind]
    x = torch.rand(shape, generator=g, dtype=torch.float64) if kind == "eps" else torch.randn(shape, generator=g, dtype=torch.float64)
    return x + 2.0 if kind == "real" else x


def fixed_schedule(state: train.GANState, parts: list[slice]) -> list[train.Phase]:
    """A WGAN-GP critic step (n_critic 2), a G step and a lazy R1 phase (every 2 steps, scaled by 2) on the fixed
    global batches. ``parts``: the slices of the global batch this process handles; with several (a
    "ghost batch" reference), the loss is the mean of the per-part losses, as averaging over ranks makes it."""
    G, D = state.G, state.D

    def mean_over_parts(loss_of):
        return sum(loss_of(p) for p in parts) / len(parts)

    def d_step():
        real, z, eps = (fixed_batch(state.step, k) for k in ("real", "z", "eps"))

        def loss_of(p):
            with torch.no_grad():
                fake = G(z[p])
            x_hat = eps[p] * real[p] + (1 - eps[p]) * fake
            grad = losses._input_gradient(D, x_hat)
            gp = 10 * (grad.norm(dim=1) - 1).square().mean()
            return D(fake).mean() - D(real[p]).mean() + gp
        loss = mean_over_parts(loss_of)
        train.update(state.opt_D, loss)
        return {"loss_D": loss.detach()}

    def g_step():
        z = fixed_batch(state.step, "z")
        loss = mean_over_parts(lambda p: -D(G(z[p])).mean())
        train.update(state.opt_G, loss)
        return {"loss_G": loss.detach()}

    def r1_step():
        real = fixed_batch(state.step, "real")
        r1 = mean_over_parts(lambda p: losses.r1_penalty(D, real[p], gamma=1.0))
        train.update(state.opt_D, r1 * 2)
        return {"R1": r1.detach()}

    return [train.Phase("D", d_step, repeat=2), train.Phase("G", g_step), train.Phase("R1", r1_step, every=2)]


def equality(parts: list[slice], batch_norm: bool = False) -> dict:
    state = toy_state(batch_norm)
    train.fit_schedule(state, fixed_schedule(state, parts), STEPS, log_every=1, progress=False)
    return {"G": state.G.state_dict(), "D": state.D.state_dict(), "G_ema": state.G_ema.state_dict(),
            "history": state.history.values}


def own_draws(state: train.GANState):
    """A schedule whose step draws a real batch and latents from this rank's random stream."""
    drawn = []

    def step():
        z = torch.randn(distributed.local_batch(B), Z, dtype=torch.float64)
        real = torch.randn(distributed.local_batch(B), 2, dtype=torch.float64) + 2
        drawn.append(z)
        loss = state.D(state.G(z)).mean() - state.D(real).mean()
        train.update(state.opt_D, loss)
        return {"loss": loss.detach()}
    return [train.Phase("D", step)], drawn


def resume(out: Path, split: int | None) -> dict:
    """STEPS steps drawn from each rank's own stream: in one go, or ``split`` steps, a checkpoint, the rest."""
    path = out / f"resume-{split}.pt"
    state = toy_state()
    if split is not None:
        phases, _ = own_draws(state)
        train.fit_schedule(state, phases, split, log_every=1, progress=False, checkpoint=path)
        state = toy_state(seed=99)  # a fresh process's models, about to be overwritten by the checkpoint
    phases, drawn = own_draws(state)
    train.fit_schedule(state, phases, STEPS, log_every=1, progress=False, checkpoint=path if split else None)
    return {"G": state.G.state_dict(), "D": state.D.state_dict(), "drawn": drawn}


def nan_on_rank_1() -> str:
    state = toy_state()
    phases, _ = own_draws(state)
    poisoned = train.Phase("poison", lambda: {"loss": torch.tensor(float("inf")) if distributed.rank() == 1 and state.step == 2
                                               else torch.tensor(0.0)})
    try:
        train.fit_schedule(state, phases + [poisoned], STEPS, log_every=1, progress=False)
    except train.TrainingDiverged as err:
        return f"TrainingDiverged: {err}"
    return "finished"


def main(out: Path) -> None:
    distributed.setup("cpu")
    r, n = distributed.rank(), distributed.world()
    share = B // n
    results = {
        "equality": equality([slice(r * share, (r + 1) * share)]),
        "batchnorm": equality([slice(r * share, (r + 1) * share)], batch_norm=True),
        "resume_once": resume(out, None),
        "resume_split": resume(out, 2),
        "nan": nan_on_rank_1(),
        "local_batch": distributed.local_batch(B),
    }
    try:
        distributed.local_batch(B + 1)
        results["uneven"] = "accepted"
    except ValueError as err:
        results["uneven"] = str(err)
    torch.save(results, out / f"rank{r}.pt")
    distributed.teardown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
