"""Times one fine-tuning step (forward, backward, AdamW) of torchvision's MobileNetV2 in PyTorch.

Used only by `npm run bench` to compare with multitag's training graphs; multitag itself never runs
Python. Prints one JSON object with the median step time per image; multitag's side
(bench/finetuneStep.ts) reports the same statistic after the same single warm-up step.

Usage: python3 torch_step.py BATCH THREADS STEPS FROZEN_FEATURE_BLOCKS
"""
import json
import sys
import time

import torch
import torchvision


def main() -> None:
    batch, threads, steps, frozen = (int(value) for value in sys.argv[1:5])
    torch.set_num_threads(threads)
    torch.manual_seed(0)

    # Random weights: no download, and the speed does not depend on the values.
    model = torchvision.models.mobilenet_v2(weights=None)
    model.classifier = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(1280, 5))
    model.eval()  # BatchNorm in inference mode, as multitag fine-tunes
    for block in list(model.features.children())[:frozen]:
        for parameter in block.parameters():
            parameter.requires_grad_(False)
    model = model.to(memory_format=torch.channels_last)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    total = sum(parameter.numel() for parameter in model.parameters())
    optimizer = torch.optim.AdamW(trainable, lr=1e-5)
    loss_function = torch.nn.BCEWithLogitsLoss()

    images = torch.randn(batch, 3, 224, 224).to(memory_format=torch.channels_last)
    targets = (torch.rand(batch, 5) > 0.7).float()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_function(model(images), targets)
        loss.backward()
        optimizer.step()

    step()
    seconds = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    print(json.dumps({
        "msPerImage": seconds[len(seconds) // 2] * 1000 / batch,
        "fastestMsPerImage": seconds[0] * 1000 / batch,
        "trainableFraction": sum(parameter.numel() for parameter in trainable) / total,
        "threads": threads,
        "batch": batch,
        "frozenFeatureBlocks": frozen,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
