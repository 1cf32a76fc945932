"""Three PyTorch scripts ported by changing their imports (and the data source).

Each loop below is written as the original script writes it: pytorch/examples'
mnist/main.py and mnist_rnn/main.py, and kuangliu/pytorch-cifar's main.py with
its ResNet-18. Only these lines differ from the originals:

    import torch                          ->  import tinynorm as torch
    import torch.nn as nn                 ->  import tinynorm.nn as nn
    import torch.nn.functional as F       ->  import tinynorm.functional as F
    import torch.optim as optim           ->  import tinynorm.optim as optim
    from torch.optim.lr_scheduler import StepLR -> from tinynorm.optim.lr_scheduler import StepLR
    datasets.MNIST(...) / CIFAR10(...)    ->  the bundled 8x8 digits / small random images

and the sizes: the MNIST models take 8x8 digits (``fc1`` sees 64*2*2 features, the
LSTM reads 8 rows of 8 pixels), and the ResNet-18 has widths 8..64 instead of
64..512 so that a few steps run in seconds. The ResNet-18's classes, the original's,
live in benchmarks/resnet.py, which builds them from tinynorm's ``nn`` and ``F`` here.
"""
import os
import sys

import numpy as np
import pytest

import tinynorm as torch
import tinynorm.functional as F
import tinynorm.nn as nn
import tinynorm.optim as optim
from tinynorm.data import load_digits
from tinynorm.optim.lr_scheduler import StepLR
from tinynorm.utils.data import DataLoader, TensorDataset


def _digits(n):
    x, y = load_digits("train")
    x = (x[:n] - 0.1307) / 0.3081
    return TensorDataset(torch.tensor(x.astype(np.float32)), torch.tensor(y[:n]))


# ------------------------------------------------------------------ mnist/main.py
# examples/port_from_pytorch.py's Net and loops, repeated on purpose: this test is that port.
class MnistNet(nn.Module):
    def __init__(self):
        super(MnistNet, self).__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(256, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


# ------------------------------------------------------------------ mnist_rnn/main.py
class RnnNet(nn.Module):
    def __init__(self):
        super(RnnNet, self).__init__()
        self.rnn = nn.LSTM(input_size=8, hidden_size=64, batch_first=True)
        self.batchnorm = nn.BatchNorm1d(64)
        self.dropout1 = nn.Dropout2d(0.25)
        self.dropout2 = nn.Dropout2d(0.5)
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, input):
        input = input.reshape(-1, 8, 8)
        output, hidden = self.rnn(input)
        output = output[:, -1, :]
        output = self.batchnorm(output)
        output = self.dropout1(output)
        output = self.fc1(output)
        output = F.relu(output)
        output = self.dropout2(output)
        output = self.fc2(output)
        output = F.log_softmax(output, dim=1)
        return output


def mnist_train(args, model, device, train_loader, optimizer, epoch, losses):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if batch_idx % args["log_interval"] == 0:
            print('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader), loss.item()))


def mnist_test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction='sum').item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    test_loss /= len(test_loader.dataset)
    return test_loss, correct / len(test_loader.dataset)


def _mnist_main(Net, lr, epochs, n):
    args = {"log_interval": 10}
    use_accel = torch.accelerator.is_available()
    torch.manual_seed(1)
    if use_accel:
        device = torch.accelerator.current_accelerator()
    else:
        device = torch.device("cpu")
    train_loader = DataLoader(_digits(n), batch_size=32, shuffle=True)
    test_loader = DataLoader(_digits(n), batch_size=1000)
    model = Net().to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=lr)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
    losses, lrs = [], []
    before = mnist_test(model, device, test_loader)
    for epoch in range(1, epochs + 1):
        mnist_train(args, model, device, train_loader, optimizer, epoch, losses)
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    after = mnist_test(model, device, test_loader)
    return before, after, losses, lrs


def test_mnist_cnn_port_trains():
    before, after, losses, lrs = _mnist_main(MnistNet, lr=1.0, epochs=2, n=320)
    assert after[0] < 0.7 * before[0], (before, after)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert after[1] > 0.6
    np.testing.assert_allclose(lrs, [0.7, 0.49])


def test_mnist_rnn_port_trains():
    with pytest.warns(UserWarning, match="2-D input to dropout2d"):
        before, after, losses, lrs = _mnist_main(RnnNet, lr=1.0, epochs=3, n=320)
    assert after[0] < 0.9 * before[0], (before, after)
    assert after[1] > 0.4
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    np.testing.assert_allclose(lrs, [0.7, 0.49, 0.343])


# ------------------------------------------------------------------ pytorch-cifar (models/resnet.py, main.py)
# models/resnet.py is benchmarks/resnet.py (bench_train times it against torch), built here
# from tinynorm's nn and F.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
from resnet import resnet18  # noqa: E402

WIDTH = 8  # 64 in the original


def ResNet18():
    return resnet18(nn, F, WIDTH)


def test_cifar_resnet18_port_trains_and_checkpoints(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    import os
    rng = np.random.default_rng(0)
    images = rng.standard_normal((16, 3, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, 16)
    trainset = TensorDataset(torch.tensor(images), torch.tensor(labels))

    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    best_acc = 0
    start_epoch = 0
    trainloader = DataLoader(trainset, batch_size=8, shuffle=True, num_workers=2)
    testloader = DataLoader(trainset, batch_size=16, shuffle=False, num_workers=2)
    net = ResNet18()
    net = net.to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=200)
    history = []

    def train(epoch):
        net.train()
        train_loss = 0
        correct = 0
        total = 0
        for batch_idx, (inputs, targets) in enumerate(trainloader):
            inputs, targets = inputs.to(device), targets.to(device)
            optimizer.zero_grad()
            outputs = net(inputs)
            loss = criterion(outputs, targets)
            loss.backward()
            optimizer.step()

            train_loss += loss.item()
            _, predicted = outputs.max(1)
            total += targets.size(0)
            correct += predicted.eq(targets).sum().item()
        history.append(train_loss/(batch_idx+1))

    def test(epoch):
        nonlocal best_acc
        net.eval()
        correct = 0
        total = 0
        with torch.no_grad():
            for batch_idx, (inputs, targets) in enumerate(testloader):
                inputs, targets = inputs.to(device), targets.to(device)
                outputs = net(inputs)
                _, predicted = outputs.max(1)
                total += targets.size(0)
                correct += predicted.eq(targets).sum().item()
        acc = 100.*correct/total
        if acc > best_acc:
            state = {
                'net': net.state_dict(),
                'acc': acc,
                'epoch': epoch,
            }
            if not os.path.isdir('checkpoint'):
                os.mkdir('checkpoint')
            torch.save(state, './checkpoint/ckpt.pth')
            best_acc = acc

    for epoch in range(start_epoch, start_epoch+6):
        train(epoch)
        test(epoch)
        scheduler.step()

    assert np.mean(history[-2:]) < 0.6 * history[0], history
    checkpoint = torch.load('./checkpoint/ckpt.pth')
    fresh = ResNet18()
    fresh.load_state_dict(checkpoint['net'])
    assert checkpoint['acc'] == best_acc and isinstance(checkpoint['epoch'], int)
    for k, v in net.state_dict().items():
        if checkpoint['epoch'] == start_epoch + 5:
            np.testing.assert_array_equal(fresh.state_dict()[k], v)
    lr = 0.1 * (1 + np.cos(np.pi * 6 / 200)) / 2
    assert scheduler.get_last_lr()[0] == pytest.approx(lr, rel=1e-12)
