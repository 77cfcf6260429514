"""The trainopt.nn modules against PyTorch's: the same model written with
both, trainopt's built with PyTorch's initial weights, trained 5 steps by
each (losses within 1e-4), then run in inference mode (outputs within
1e-4). Covers Linear, Conv2d, BatchNorm2d (batch statistics in training,
running statistics after), LayerNorm, Embedding, MultiheadAttention
(causal and not), GELU, Dropout (p=0.5 in training: an expectation;
identity in inference) and Sequential. Runs in .venv-torch."""
import os

import numpy as np
import pytest

if os.environ.get("TRAINOPT_REQUIRE_TORCH") == "1":
    import torch
else:
    torch = pytest.importorskip("torch")

import trainopt  # noqa: E402
from trainopt import functional as F  # noqa: E402
from trainopt import nn  # noqa: E402

STEPS, BATCH, T, V, E = 5, 8, 10, 40, 32


class TorchBlock(torch.nn.Module):
    def __init__(self, causal):
        super().__init__()
        self.causal = causal
        self.emb = torch.nn.Embedding(V, E)
        self.ln1 = torch.nn.LayerNorm(E)
        self.attn = torch.nn.MultiheadAttention(E, 4, batch_first=True)
        self.ln2 = torch.nn.LayerNorm(E)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(E, 2 * E), torch.nn.GELU(),
                                       torch.nn.Linear(2 * E, E))
        self.head = torch.nn.Linear(E, V)

    def forward(self, ids):
        h = self.emb(ids)
        a = self.ln1(h)
        mask = torch.triu(torch.full((T, T), float("-inf")), 1) if self.causal else None
        h = h + self.attn(a, a, a, attn_mask=mask, need_weights=False)[0]
        h = h + self.mlp(self.ln2(h))
        return self.head(h)


class Block(nn.Module):
    def __init__(self, causal):
        super().__init__()
        self.causal = causal
        self.emb, self.ln1, self.ln2 = nn.Embedding(V, E), nn.LayerNorm(E), nn.LayerNorm(E)
        self.attn = nn.MultiheadAttention(E, 4)
        self.mlp = nn.Sequential(nn.Linear(E, 2 * E), nn.GELU(), nn.Linear(2 * E, E))
        self.head = nn.Linear(E, V)

    def forward(self, ids):
        h = self.child("emb", ids)
        h = F.add(h, self.child("attn", self.child("ln1", h), None, None, self.causal))
        h = F.add(h, self.child("mlp", self.child("ln2", h)))
        return self.child("head", h)


def torch_bn():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1, bias=False),
                               torch.nn.BatchNorm2d(6), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(6 * 8 * 8, 5))


def bn():
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6),
                         nn.ReLU(), nn.Flatten(), nn.Linear(6 * 8 * 8, 5))


def run_both(tmodel, model, x, y, shape, dtype, flags):
    state = {k: v.detach().numpy().copy() for k, v in tmodel.state_dict().items()}
    g = trainopt.Graph("m", weights=state)
    g.output("logits", model(g.input("x", shape, dtype=dtype)))
    with trainopt.compile(g, batch_size=BATCH, loss="cross_entropy",
                          optimizer=trainopt.optim.SGD(lr=0.1), **flags) as m:
        # Every value is PyTorch's (the compiler's own: the step counter and
        # BatchNorm's count of batches).
        assert {k for k in m.state() if "num_batches" not in k} - {"step"} <= set(state)
        ours = []
        m.fit(x, y, epochs=1, shuffle=False, verbose=0,
              callbacks=[trainopt.callbacks.LambdaCallback(
                  on_step_end=lambda s, logs: ours.append(logs["loss"]))])
        predicted = m.predict(x[:BATCH])
        trained = m.state()
    opt = torch.optim.SGD(tmodel.parameters(), lr=0.1)
    tmodel.train()
    theirs = []
    for i in range(STEPS):
        out = tmodel(torch.from_numpy(x[i * BATCH:(i + 1) * BATCH]))
        loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]),
                                                 torch.from_numpy(y[i * BATCH:(i + 1) * BATCH])
                                                 .reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        theirs.append(loss.item())
    tmodel.eval()
    with torch.no_grad():
        expected = tmodel(torch.from_numpy(x[:BATCH])).numpy()
    worst = np.abs(np.array(ours) - np.array(theirs)).max()
    print(f"worst loss difference {worst:.2e}, inference output difference "
          f"{np.abs(predicted - expected).max():.2e}")
    assert worst <= 1e-4, (ours, theirs)
    assert np.allclose(predicted, expected, rtol=1e-3, atol=1e-4)
    for k, v in tmodel.state_dict().items():
        if k in trained:
            assert np.allclose(trained[k], v.numpy(), rtol=1e-3, atol=1e-4), k


@pytest.mark.parametrize("causal", [False, True])
def test_attention_block(causal):
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, V, (STEPS * BATCH, T)).astype(np.int64)
    run_both(TorchBlock(causal), Block(causal), ids, np.roll(ids, -1, 1), [-1, T], "i64",
             {"class_axis": -1})


def test_batch_norm():
    torch.manual_seed(2)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((STEPS * BATCH, 3, 8, 8)).astype(np.float32)
    run_both(torch_bn(), bn(), x, rng.integers(0, 5, STEPS * BATCH), [-1, 3, 8, 8], "f32", {})


def test_dropout():
    """p=0.5: about half the activations dropped, the rest doubled, in
    training; the identity in inference."""
    g = trainopt.Graph("d", seed=3)
    w = np.eye(64, dtype=np.float32)
    net = nn.Sequential(nn.Linear(64, 64), nn.Dropout(0.5))
    g = trainopt.Graph("d", seed=3, weights={"0.weight": w, "0.bias": np.zeros(64, np.float32)})
    g.output("logits", net(g.input("x", [-1, 64])))
    x = np.ones((16, 64), np.float32)
    with trainopt.compile(g, batch_size=16, loss="mse", optimizer=trainopt.optim.SGD(lr=1e-9),
                          probe_values=True) as m:
        assert np.array_equal(m.predict(x), x)  # inference: identity
        m.fit(x, x, epochs=1, shuffle=False, verbose=0)
        loss = m.history["loss"][0]
    # Training: each output is 0 or 2 with probability 1/2: E[(y - 1)^2] = 1.
    assert 0.8 < loss < 1.2, loss
