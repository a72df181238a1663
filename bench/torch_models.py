# The PyTorch twins of our models used by the benchmark baselines
# (bench/torch_trainstep.py on the CPU, bench/torch_gpu_trainstep.py on a GPU).
import torch.nn as nn


def smallcnn(cin, ncl):
    def cbr(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]
    features = nn.Sequential(*cbr(cin, 32), *cbr(32, 32), nn.MaxPool2d(2), *cbr(32, 64), *cbr(64, 64),
                             nn.MaxPool2d(2), *cbr(64, 128))
    return nn.Sequential(features, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, ncl))
