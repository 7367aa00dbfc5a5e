"""A small residual CNN image tower, trained from scratch on the CPU for the offline world."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn


@dataclass
class ImageTowerConfig:
    image_size: int = 96  # side of the square input in pixels
    widths: tuple[int, ...] = (32, 64, 128, 256)  # channels of each stage
    depths: tuple[int, ...] = (1, 2, 2, 2)  # residual blocks per stage (each stage halves the resolution)
    stem_stride: int = 2  # stride of the first convolution
    embed_dim: int = 384  # output dimension (= the text tower's)
    num_classes: int = 0  # object-presence head over known objects (0 = none)
    concept_head: bool = False  # embed = MLP(features) + W @ sigmoid(object logits): recognition feeds the embedding

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ImageTowerConfig":
        data = dict(data)
        for key in ("widths", "depths"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + self.skip(x))


class ImageTower(nn.Module):
    def __init__(self, cfg: ImageTowerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w0 = cfg.widths[0]
        self.stem = nn.Sequential(
            nn.Conv2d(3, w0, 3, cfg.stem_stride, 1, bias=False), nn.BatchNorm2d(w0), nn.ReLU(inplace=True)
        )
        layers, cin = [], w0
        for i, (w, d) in enumerate(zip(cfg.widths, cfg.depths)):
            for j in range(d):
                layers.append(_Block(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w
        self.stages = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(cin * 2, cin * 2), nn.GELU(), nn.Linear(cin * 2, cfg.embed_dim))
        # object presence: class logits at every location of the last feature map, max over space, so a small
        # object anywhere in the picture is found (multiple-instance pooling)
        self.aux = nn.Conv2d(cin, cfg.num_classes, 1) if cfg.num_classes else None
        if self.aux is not None:
            nn.init.constant_(self.aux.bias, -5.0)  # scenes hold a few of hundreds of objects: start near "absent"
        # one embedding column per known object, initialised by the trainer from the text of "a photo of a <object>"
        self.concept = nn.Linear(cfg.num_classes, cfg.embed_dim, bias=False) if cfg.concept_head and cfg.num_classes else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map (N, C, h, w)."""
        return self.stages(self.stem(x))

    def embed(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(embedding, object logits or None) from the last feature map."""
        pooled = torch.cat([feats.mean(dim=(2, 3)), feats.amax(dim=(2, 3))], dim=1)  # mean: "what"; max: small things
        logits = self.aux(feats).amax(dim=(2, 3)) if self.aux is not None else None
        emb = self.head(pooled)
        if self.concept is not None:
            emb = emb + self.concept(torch.sigmoid(logits))
        return emb, logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.features(x))[0]
