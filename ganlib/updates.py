"""One update of each player: the pieces every training step is made of (``ganlib.train`` re-exports them).

``adam`` builds both optimisers (TTUR: separate learning rates), ``fakes`` draws a batch from
``G.random_inputs`` with no graph back into G, ``discriminator_step`` and ``generator_step`` take one
optimiser step each (forward passes in the run's autocast context, losses in fp32, a penalty in its
own fp32 forward), and ``gan_steps`` packs them into the ``d_step`` / ``g_step`` pair ``train.fit``
runs. ``ganlib.train``'s module docstring shows the shape of a step built from them.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import nn

from . import distributed, losses
from .speed import amp_context

StepFn = Callable[[], dict[str, torch.Tensor]]
NO_AUTOCAST = contextlib.nullcontext()


def fused_adam(module: nn.Module) -> bool | None:
    """True where torch has a fused Adam kernel for the module's device (CUDA and CPU), else None (the
    default, a for-each loop). On two CPU cores the fused step is about 8x faster than the for-each one
    (6.6 M parameters: 5 ms vs 42 ms), and it computes the same update."""
    return True if next(module.parameters()).device.type in ("cuda", "cpu") else None


def adam(G: nn.Module, D: nn.Module, lr_G: float = 2e-4, lr_D: float | None = None, betas=(0.5, 0.999),
         eps: float = 1e-8) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for both players; ``lr_D`` defaults to ``lr_G`` (set both for TTUR, Heusel et al. 2017).
    Fused kernels where torch has them (``fused_adam``)."""
    fused = fused_adam(G)
    return (torch.optim.Adam(G.parameters(), lr=lr_G, betas=betas, eps=eps, fused=fused),
            torch.optim.Adam(D.parameters(), lr=lr_G if lr_D is None else lr_D, betas=betas, eps=eps, fused=fused))


def lazy_adam_settings(lr: float, betas: tuple[float, float], every: int) -> tuple[float, tuple[float, float]]:
    """StyleGAN2's correction for a regulariser run every k steps: with c = k / (k + 1), lr * c and beta^c.

    The optimiser then takes k + 1 steps where it was tuned for k, at the same effective speed.
    """
    c = every / (every + 1)
    return lr * c, (betas[0] ** c, betas[1] ** c)


def update(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One optimiser step on ``loss``: clear gradients (to None), backpropagate, step. Through the
    optimiser's ``GradScaler`` when an fp16 run gave it one (``speed.amp_context``): the loss is scaled
    before backpropagating, the gradients unscaled before the step, and a step whose gradients
    overflowed is skipped. Under torchrun the gradients are averaged across ranks before the step
    (``ganlib.distributed``): the one place every step of every model family passes."""
    opt.zero_grad(set_to_none=True)
    scaler = getattr(opt, "grad_scaler", None)
    if scaler is None:
        loss.backward()
        distributed.average_gradients(distributed.optimizer_params(opt))  # across torchrun's ranks; else nothing
        opt.step()
        return
    scaler.scale(loss).backward()
    distributed.average_gradients(distributed.optimizer_params(opt))  # scaled alike on every rank; an inf reaches all
    scaler.step(opt)
    scaler.update()


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def fakes(G: nn.Module, n: int, ctx=NO_AUTOCAST, inputs: tuple | None = None) -> torch.Tensor:
    """A batch G(*inputs) with no graph back into G (for D's step); ``inputs`` default to
    ``G.random_inputs(n, device)``, which every course generator has."""
    inputs = G.random_inputs(n, _device(G)) if inputs is None else inputs
    with torch.no_grad(), ctx:
        return G(*inputs)


def discriminator_outputs(d_real: torch.Tensor, d_fake: torch.Tensor) -> dict[str, torch.Tensor]:
    """What a BCE discriminator's step logs besides its loss: mean sigmoid(D) on real and on fake
    logits, detached and left on the device (``fit`` reads them back once per log interval)."""
    return {"D(x)": torch.sigmoid(d_real.detach().float()).mean(), "D(G(z))": torch.sigmoid(d_fake.detach().float()).mean()}


def critic_outputs(d_real: torch.Tensor, d_fake: torch.Tensor) -> dict[str, torch.Tensor]:
    """What a critic's step logs: its mean scores (no sigmoid: scores, not probabilities) and their
    gap E[D(x)] - E[D(G(z))], the critic's estimate of W1 (for a 1-Lipschitz critic)."""
    real, fake = d_real.detach().float().mean(), d_fake.detach().float().mean()
    return {"critic(x)": real, "critic(G(z))": fake, "W1 estimate": real - fake}


def discriminator_step(D, opt_D, d_loss, x_real, x_fake, ctx=NO_AUTOCAST, *, penalty=None,
                       outputs=discriminator_outputs) -> dict[str, torch.Tensor]:
    """One update of D on ``d_loss(D(x_real), D(x_fake))`` (+ ``penalty(D, x_real, x_fake)`` if given).

    ``x_fake`` is detached: no gradient reaches G. The forward passes run in ``ctx``; the loss is
    always taken in fp32, and a penalty runs its own fp32 forward (``ganlib.losses``).
    """
    x_fake = x_fake.detach()
    with ctx:
        d_real, d_fake = D(x_real), D(x_fake)
    loss = d_loss(d_real.float(), d_fake.float())
    logs = {"loss_D": loss.detach(), **outputs(d_real, d_fake)}
    if penalty is not None:
        reg = penalty(D, x_real, x_fake)
        logs["penalty"], loss = reg.detach(), loss + reg
    update(opt_D, loss)
    return logs


@contextlib.contextmanager
def frozen(module: nn.Module):
    """``module``'s parameters with ``requires_grad`` off inside the block, restored after. D's forward pass in
    G's step then records no graph to D's weights, so G's backward skips gradients it would throw away (as
    NVlabs' StyleGAN2 toggles ``requires_grad`` per phase); gradients still flow through D to its input."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def generator_step(D, opt_G, g_loss, x_fake, ctx=NO_AUTOCAST, *, freeze: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """One update of G on ``g_loss(D(x_fake))``. D's parameters are ``frozen`` for its forward pass (``D``
    itself when it is a module, else ``freeze``: the module behind a callable such as ``lambda x: D(x, y)``),
    so they get no gradient and are not stepped."""
    module = D if isinstance(D, nn.Module) else freeze
    with frozen(module) if module is not None else contextlib.nullcontext(), ctx:
        d_fake = D(x_fake)
    loss = g_loss(d_fake.float())
    update(opt_G, loss)
    return {"loss_G": loss.detach()}


def real_sampler(real, device) -> Callable[[int], torch.Tensor]:
    """``n -> x_real`` on ``device`` from an ``ImageSet`` (its device-resident images, labels dropped), a
    toy distribution with ``sample(n)`` (``data.ring()``, ``data.SwissRoll()``), or such a function."""
    if hasattr(real, "x") and hasattr(real, "sample"):
        return lambda n: real.sample(n)[0]
    if hasattr(real, "sample"):
        return lambda n: real.sample(n).to(device)
    return real


def gan_steps(G, D, opt_G, opt_D, real, batch_size: int, *, d_loss=losses.d_loss_nonsaturating,
              g_loss=losses.g_loss_nonsaturating, penalty=None, outputs=discriminator_outputs,
              amp: str | bool = False) -> tuple[StepFn, StepFn]:
    """``d_step`` and ``g_step`` for ``fit``, for an unconditional GAN on images or toy points.

    Real batches come from ``real`` (``real_sampler``: a device-resident ``data.ImageSet`` is indexed,
    nothing is copied to the host), G's inputs from ``G.random_inputs`` on G's device. ``amp``
    (``speed.precision``'s answer) sets the forward passes' arithmetic; losses and penalties are fp32. WGAN-GP is ``d_loss=
    losses.d_loss_wasserstein, g_loss=losses.g_loss_wasserstein, penalty=..., outputs=critic_outputs``.
    """
    device = _device(G)
    sample, ctx = real_sampler(real, device), amp_context(device, amp, opt_G, opt_D)

    def d_step():
        x_real, x_fake = sample(batch_size), fakes(G, batch_size, ctx)
        return discriminator_step(D, opt_D, d_loss, x_real, x_fake, ctx, penalty=penalty, outputs=outputs)

    def g_step():
        with ctx:
            x_fake = G(*G.random_inputs(batch_size, device))
        return generator_step(D, opt_G, g_loss, x_fake, ctx)

    return d_step, g_step
