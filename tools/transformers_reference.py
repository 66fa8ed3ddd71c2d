"""Shared by the fixture generators: transformers' greedy continuation as the engine's tests read it."""
import torch


def greedy(model, ids, n):
    """One full forward + argmax per step (no KV cache): the new ids, the first step's logits and the
    smallest top-1/top-2 logit margin seen (a fixture is only useful when no step is a near tie)."""
    seq = list(ids)
    margins = []
    with torch.no_grad():
        first = model(torch.tensor([seq])).logits[0, -1]
        step = first
        for _ in range(n):
            top2 = torch.topk(step, 2).values
            margins.append(float(top2[0] - top2[1]))
            seq.append(int(torch.argmax(step)))
            step = model(torch.tensor([seq])).logits[0, -1]
    return seq[len(ids):], first, min(margins)
