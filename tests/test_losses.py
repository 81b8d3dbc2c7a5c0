import torch
import torch.nn.functional as F
from torch.testing import assert_close

from ganlib import losses

torch.manual_seed(0)
D_REAL, D_FAKE = 3 * torch.randn(64), 3 * torch.randn(64)


def test_d_loss_is_binary_cross_entropy_with_real_1_fake_0():
    expected = (F.binary_cross_entropy_with_logits(D_REAL, torch.ones(64))
                + F.binary_cross_entropy_with_logits(D_FAKE, torch.zeros(64)))
    assert_close(losses.d_loss_nonsaturating(D_REAL, D_FAKE), expected)
    assert losses.d_loss_minimax is losses.d_loss_nonsaturating  # one D loss for both games


def test_d_loss_is_minus_the_value_function():
    sig = torch.sigmoid
    v = torch.log(sig(D_REAL.double())).mean() + torch.log(1 - sig(D_FAKE.double())).mean()
    assert_close(losses.d_loss_minimax(D_REAL, D_FAKE).double(), -v, rtol=1e-5, atol=1e-6)


def test_generator_losses_match_their_formulas():
    p = torch.sigmoid(D_FAKE.double())
    assert_close(losses.g_loss_nonsaturating(D_FAKE).double(), -torch.log(p).mean(), rtol=1e-5, atol=1e-6)
    assert_close(losses.g_loss_minimax(D_FAKE).double(), torch.log(1 - p).mean(), rtol=1e-5, atol=1e-6)
    assert_close(losses.g_loss_nonsaturating(D_FAKE), F.binary_cross_entropy_with_logits(D_FAKE, torch.ones(64)))


def test_losses_stay_finite_for_extreme_logits():
    big = torch.tensor([-200.0, 200.0], requires_grad=True)
    for loss in (losses.d_loss_minimax(big, big), losses.g_loss_minimax(big), losses.g_loss_nonsaturating(big)):
        (grad,) = torch.autograd.grad(loss, big)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


# --- Wasserstein and hinge --------------------------------------------------------------------


def test_wasserstein_losses_are_differences_of_means_and_not_a_hinge():
    assert_close(losses.d_loss_wasserstein(D_REAL, D_FAKE), D_FAKE.mean() - D_REAL.mean())
    assert_close(losses.g_loss_wasserstein(D_FAKE), -D_FAKE.mean())
    far = torch.tensor([5.0, 9.0])  # scores far beyond any margin still move the Wasserstein loss ...
    assert losses.d_loss_wasserstein(far + 1, -far) < losses.d_loss_wasserstein(far, -far)
    assert losses.d_loss_hinge(far + 1, -far) == losses.d_loss_hinge(far, -far) == 0  # ... but not the hinge


def test_hinge_losses_match_hand_computed_values():
    d_real, d_fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-3.0, 0.0, 1.5])
    # real: relu(1 - [2, 0.5, -1]) = [0, 0.5, 2], mean 2.5/3; fake: relu(1 + [-3, 0, 1.5]) = [0, 1, 2.5], mean 3.5/3
    assert_close(losses.d_loss_hinge(d_real, d_fake), torch.tensor(2.5 / 3 + 3.5 / 3))
    assert_close(losses.g_loss_hinge(d_fake), torch.tensor(-(-3.0 + 0.0 + 1.5) / 3))


# --- penalties ----------------------------------------------------------------------------------


class Linear(torch.nn.Module):
    """D(x) = w . vec(x): its gradient is w everywhere."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x):
        return x.reshape(len(x), -1) @ self.w.reshape(-1)  # (B, C, H, W) -> (B, CHW) -> (B,)


class Quadratic(torch.nn.Module):
    """D(x) = a * sum(x^2): gradient 2 a x, norm 2 |a| ||x||."""

    def __init__(self, a=0.7):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(a))

    def forward(self, x):
        return self.a * x.square().reshape(len(x), -1).sum(1)


def test_gradient_penalty_of_a_linear_critic_is_lambda_times_norm_minus_one_squared():
    w = torch.randn(3, 4, 4, generator=torch.Generator().manual_seed(1))
    for scale in (0.2, 1.0, 3.0):
        D = Linear(scale * w)
        x_real, x_fake = torch.randn(8, 3, 4, 4), 5 * torch.randn(8, 3, 4, 4)  # any inputs at all
        expected = 10.0 * (scale * w.norm() - 1) ** 2  # the norm over all of C, H, W
        assert_close(losses.gradient_penalty(D, x_real, x_fake), expected)


def test_gradient_penalty_of_a_quadratic_critic_matches_a_hand_computation():
    D = Quadratic(0.7)
    x_real, x_fake = torch.randn(6, 2, 3, 3), torch.randn(6, 2, 3, 3)
    x_hat, eps = losses.interpolates(x_real, x_fake, torch.Generator().manual_seed(5))
    norms = 2 * 0.7 * x_hat.reshape(6, -1).norm(dim=1)
    got = losses.gradient_penalty(D, x_real, x_fake, weight=3.0, generator=torch.Generator().manual_seed(5))
    assert_close(got, 3.0 * ((norms - 1) ** 2).mean())


def test_interpolates_take_one_epsilon_per_sample_in_the_unit_interval():
    x_real, x_fake = torch.ones(256, 3, 5, 5), torch.zeros(256, 3, 5, 5)
    x_hat, eps = losses.interpolates(x_real, x_fake)
    assert eps.shape == (256, 1, 1, 1) and (eps >= 0).all() and (eps <= 1).all()
    assert_close(x_hat, eps.expand(-1, 3, 5, 5))  # every pixel of a sample shares its eps ...
    assert eps.std() > 0.2  # ... and samples do not share one eps (U[0, 1] has std 0.29)


def test_penalties_support_a_second_backward_into_d():
    D = Quadratic(0.7)
    for penalty in (losses.gradient_penalty(D, torch.randn(4, 3), torch.randn(4, 3)), losses.r1_penalty(D, torch.randn(4, 3))):
        (grad_a,) = torch.autograd.grad(penalty, D.a)
        assert torch.isfinite(grad_a) and grad_a != 0


def test_gradient_penalty_puts_no_gradient_on_the_generator():
    G = torch.nn.Linear(2, 3)
    x_fake = G(torch.randn(4, 2))  # still attached to G's graph
    losses.gradient_penalty(Linear(torch.randn(3)), torch.randn(4, 3), x_fake).backward()
    assert all(p.grad is None for p in G.parameters())


def test_r1_is_half_gamma_times_the_squared_gradient_norm_on_real_images():
    D, x = Quadratic(0.7), torch.randn(5, 2, 3, 3)
    by_hand = (2 * 0.7 * x.reshape(5, -1)).square().sum(1).mean()  # ||2 a x||^2
    assert_close(losses.r1_penalty(D, x, gamma=0.01), 0.01 / 2 * by_hand)


def test_penalties_run_in_fp32_even_inside_bf16_autocast():
    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 16), torch.nn.LeakyReLU(0.2), torch.nn.Linear(16, 1))
    x_real, x_fake = torch.randn(8, 3, 2, 2), torch.randn(8, 3, 2, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert D(x_real).dtype == torch.bfloat16  # the context does cast D's forward ...
        gp, r1 = losses.gradient_penalty(D, x_real, x_fake), losses.r1_penalty(D, x_real)
    eager_r1 = losses.r1_penalty(D, x_real)
    assert gp.dtype == r1.dtype == torch.float32  # ... but not the penalties'
    assert_close(r1, eager_r1)  # the same value as outside autocast, to fp32 rounding
    (gp + r1).backward()
    weights = [p for name, p in D.named_parameters() if name.endswith("weight")]  # biases cannot move an input gradient
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)


class _FlagRecorder(torch.nn.Module):
    """A critic that records, in its forward pass and in the backward passes through it, whether TF32 and
    autocast are on: what a penalty computed in "fp32" must keep off on an Ampere GPU."""

    def __init__(self):
        super().__init__()
        self.lin, self.seen = torch.nn.Linear(12, 1), []

    def _record(self, where):
        self.seen.append((where, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
                          torch.is_autocast_enabled("cpu")))

    def forward(self, x):
        self._record("forward")
        return self.lin(_Recorded.apply(x.flatten(1), self).square())  # input gradient depends on the weights


class _Recorded(torch.autograd.Function):
    """The identity, recording the flags in every backward pass through it (its backward is itself
    differentiable through this Function, so the double backward records again)."""

    @staticmethod
    def forward(ctx, x, recorder):
        ctx.recorder = recorder
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        ctx.recorder._record("backward")
        return _Recorded.apply(grad, ctx.recorder), None


def test_penalties_are_fp32_in_every_pass_after_tune_cuda(monkeypatch):
    """Forward, first and second backward of R1 and the gradient penalty see TF32 and autocast off, even
    when the step around them runs under bf16 autocast with TF32 allowed (torch's cuDNN default)."""
    from ganlib import speed

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        D, x = _FlagRecorder(), torch.randn(4, 3, 2, 2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            penalty = losses.r1_penalty(D, x) + losses.gradient_penalty(D, x, torch.randn(4, 3, 2, 2))
        assert {where for where, *_ in D.seen} == {"forward", "backward"}
        assert all(not tf32 and not cudnn and not amp for _, tf32, cudnn, amp in D.seen)
        assert torch.backends.cudnn.allow_tf32, "full_fp32 restores the flags after the penalty"
        speed.tune_cuda()  # what profiles.setup does on CUDA: TF32 off for the optimiser's backward too
        D.seen.clear()
        penalty.backward()
        assert D.lin.weight.grad is not None and D.seen, "the second backward passed through the recorder"
        assert all(not tf32 and not cudnn for _, tf32, cudnn, _ in D.seen)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved


def test_penalties_differentiate_the_eager_module_behind_a_compiled_wrapper():
    class Compiled(torch.nn.Module):  # what torch.compile returns: the eager module as _orig_mod
        def __init__(self, inner):
            super().__init__()
            self._orig_mod = inner

        def forward(self, x):
            raise AssertionError("a penalty must not call the compiled module")

    D = Quadratic(0.7)
    x = torch.randn(4, 3)
    assert_close(losses.r1_penalty(Compiled(D), x), losses.r1_penalty(D, x))


def test_clipping_bounds_every_parameter():
    D = torch.nn.Linear(4, 4)
    torch.nn.init.normal_(D.weight, 0, 1)
    losses.clip_weights(D, 0.01)
    assert all(p.abs().max() <= 0.01 for p in D.parameters()) and (D.weight.abs() == 0.01).any()
