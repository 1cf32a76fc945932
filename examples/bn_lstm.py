"""Teaches: recurrent batch normalization (BN-LSTM, Cooijmans et al. 2016) on digits read as sequences.

Each 8x8 digit becomes a sequence of 8 rows of 8 pixels. nn.BNLSTM
normalizes the input-to-hidden and hidden-to-hidden pre-activations and the
cell state with batch statistics kept separately for every time step
(max_length rows of running averages); a linear layer classifies the last
hidden state. The script trains it next to a plain nn.LSTM of the same size.

    python examples/bn_lstm.py            # 10 epochs each
    python examples/bn_lstm.py --quick    # 1 epoch on 256 images
"""
import argparse

import tinynorm as tn
from tinynorm import nn, optim
from tinynorm.data import DataLoader, load_digits
from tinynorm.train import evaluate


class RowReader(nn.Module):
    def __init__(self, bn, hidden=48):
        super().__init__()
        self.rnn = nn.BNLSTM(8, hidden, max_length=8) if bn else nn.LSTM(8, hidden)
        self.head = nn.Linear(hidden, 10)

    def forward(self, images):
        seq = images.reshape(images.shape[0], 8, 8).permute(1, 0, 2)   # (T=8 rows, N, 8 pixels)
        _, (h, _) = self.rnn(seq)
        return self.head(h[0])


def run(bn, epochs, x_train, y_train, x_test, y_test):
    tn.manual_seed(0)
    model = RowReader(bn)
    opt = optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader((x_train, y_train), batch_size=32, shuffle=True, drop_last=True, seed=0)
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(model(tn.tensor(xb)), tn.tensor(yb)).backward()
            opt.step()
    return evaluate(model, x_test, y_test)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 epoch on 256 images")
    args = p.parse_args(argv)
    x_train, y_train = load_digits("train")
    x_test, y_test = load_digits("test")
    epochs = 10
    if args.quick:
        x_train, y_train, epochs = x_train[:256], y_train[:256], 1
    results = {}
    for bn, name in ((True, "BN-LSTM"), (False, "LSTM")):
        results[name] = run(bn, epochs, x_train, y_train, x_test, y_test)
        print(f"{name:<8} {epochs} epoch(s): test accuracy {results[name]:.4f}")
    return results


if __name__ == "__main__":
    main()
