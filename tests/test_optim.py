"""weakclip.core.optim.adamw: the fused AdamW follows torch's reference AdamW step for step."""

import torch

from weakclip.core.optim import adamw


def test_fused_adamw_tracks_the_reference_implementation():
    torch.manual_seed(0)
    start = [torch.randn(300, 16), torch.randn(16), torch.randn(7, 3, 3, 3)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(20)]

    def run(make):
        params = [torch.nn.Parameter(p.clone()) for p in start]
        groups = [{"params": params[:1], "weight_decay": 0.0}, {"params": params[1:], "weight_decay": 0.1}]
        opt = make(groups, lr=1e-2, betas=(0.9, 0.98), eps=1e-6)
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = g.clone()
            opt.step()
        return params, opt

    fused, opt = run(adamw)
    reference, _ = run(lambda groups, **kw: torch.optim.AdamW(groups, foreach=False, **kw))
    assert opt.defaults["fused"] is True
    for a, b, p0 in zip(fused, reference, start):
        assert (a - p0).abs().max() > 0.05  # the parameters did move
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
