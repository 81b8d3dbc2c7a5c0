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
