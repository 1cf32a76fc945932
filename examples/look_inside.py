"""Teaches: reading the tape of a small CNN, drawing it, and inspecting a gradient with a hook.

1. `out.grad_fn` is the last node of the tape; `next_functions` leads back to the inputs,
   ending in `AccumulateGrad` nodes for the parameters (names as PyTorch gives them).
2. `tinynorm.autograd.format_tape(out)` lists every node in tape order with the shapes it
   read and made and the bytes it saved for backward: where training memory goes.
3. `tinynorm.viz.make_dot` gives Graphviz DOT source; `tinynorm.viz.render` draws it (needs
   `pip install 'tinynorm[viz]'` and Graphviz's `dot`).
4. A hook on the BatchNorm output prints its gradient's norm as backward passes by, and a
   full backward hook on the BatchNorm module shows grad_output and grad_input.

    python examples/look_inside.py                 # writes look_inside.svg (or .dot)
    python examples/look_inside.py --out docs/look_inside/cnn --format svg
    python examples/look_inside.py --quick         # batch 2, DOT only
"""
import argparse

import numpy as np

import tinynorm as tn
from tinynorm import autograd, nn, viz


def small_cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 10))


def walk(fn, depth=0, seen=None):
    """Print the graph from ``fn`` back to the leaves, as PyTorch users walk ``next_functions``."""
    seen = set() if seen is None else seen
    extra = f" {fn.variable.shape}" if fn.name() == "AccumulateGrad" else ""
    print("  " * depth + fn.name() + extra + (" (seen)" if id(fn) in seen else ""))
    if id(fn) in seen:
        return
    seen.add(id(fn))
    for parent, _ in fn.next_functions:
        if parent is not None:
            walk(parent, depth + 1, seen)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="batch 2 and no rendering")
    p.add_argument("--out", default="look_inside", help="path of the drawing, without extension")
    p.add_argument("--format", choices=["svg", "png"], default="svg")
    args = p.parse_args()

    tn.manual_seed(0)
    net = small_cnn()
    batch = 2 if args.quick else 8
    x = tn.tensor(np.random.default_rng(0).standard_normal((batch, 1, 8, 8)).astype(np.float32))
    target = np.arange(batch) % 10

    loss = tn.functional.cross_entropy(net(x), target)
    print("== grad_fn and next_functions ==")
    walk(loss.grad_fn)
    print("\n== format_tape(loss) ==")
    print(autograd.format_tape(loss))
    dot = viz.make_dot(loss, params=dict(net.named_parameters()))
    print(f"\n== make_dot: {dot.count('->')} edges ==")
    if args.quick:
        print(dot.splitlines()[4])
    else:
        try:
            print(f"drew {viz.render(loss, args.out, format=args.format, params=dict(net.named_parameters()))}")
        except viz.VizUnavailable as e:
            with open(args.out + ".dot", "w") as f:
                f.write(dot)
            print(f"{e}\nwrote {args.out}.dot instead")

    bn = net[1]
    handle = bn.register_full_backward_hook(
        lambda module, grad_input, grad_output: print(
            f"full backward hook on {type(module).__name__}: grad_output {grad_output[0].shape}, "
            f"grad_input {[None if g is None else g.shape for g in grad_input]}"))
    normalized = {}
    bn.register_forward_hook(lambda module, args, output: normalized.setdefault("y", output))
    loss = tn.functional.cross_entropy(net(x), target)
    normalized["y"].register_hook(
        lambda g: print(f"tensor hook: d loss / d BatchNorm output has norm "
                        f"{np.linalg.norm(g.numpy()):.4g}"))
    print("\n== backward, with a tensor hook and a module backward hook ==")
    loss.backward()
    handle.remove()
    print(f"conv weight grad norm {np.linalg.norm(net[0].weight.grad.numpy()):.4g}")


if __name__ == "__main__":
    main()
