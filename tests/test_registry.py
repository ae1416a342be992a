"""Every registry entry builds tiny, runs forward, and behaves as its family promises."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aunets.core.errors import ConfigError
from aunets.engines.manifest import FUSIONS, InputSpec
from aunets.engines.nets.detector import Detector, recalibrate_batchnorm
from aunets.engines.nets.ensemble import Ensemble
from aunets.engines.nets.fusion import TwoStreamEncoder
from aunets.engines.nets.hydranet import HydraNet
from aunets.engines.registry import create_model, list_models, model_spec, replace_head

TINY = 32


def tiny_input(name: str, batch: int = 2, seed: int = 0) -> torch.Tensor:
    spec = InputSpec(fusion=model_spec(name).fusion, height=TINY, width=TINY)
    return torch.randn((batch, *spec.tensor_shape), generator=torch.Generator().manual_seed(seed))


def test_registry_lists_every_family_and_fusion() -> None:
    names = list_models()
    families = {model_spec(n).family for n in names}
    assert {"vgg16", "mobilenetv2", "hydranet", "view"} <= families
    for prefix in ("aunet_vgg16", "mobilenetv2"):
        for fusion in ("rgb", "flow", "channels", "horizontal", "pi_conv", "pi_fc6", "pi_fc7"):
            assert f"{prefix}_{fusion}" in names
    assert all(model_spec(n).fusion in FUSIONS for n in names)
    assert model_spec("aunet_vgg16_pi_fc6").fusion == "channels"


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_builds_and_runs_tiny(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, 5, tiny=True)
    x = tiny_input(name)
    recalibrate_batchnorm(model, [tiny_input(name, batch=4, seed=2)])
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 5)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()
    with torch.no_grad():
        y_other = model(tiny_input(name, seed=1))
    assert not torch.allclose(y, y_other), "logits do not depend on the input"
    assert hasattr(model, "encoder")


def test_unknown_model_and_bad_kwargs_name_the_fix() -> None:
    with pytest.raises(ConfigError, match="available"):
        create_model("resnet", 3)
    with pytest.raises(ConfigError, match="width_mult"):
        create_model("aunet_vgg16_rgb", 3, tiny=True, width_mult=0.5)
    with pytest.raises(ConfigError, match="tiny=False"):
        create_model("mobilenetv2_rgb", 3, tiny=True, pretrained=True)
    with pytest.raises(ConfigError, match=r"width_mult=1\.0"):
        create_model("mobilenetv2_rgb", 3, pretrained=True, width_mult=0.5)


@pytest.mark.slow
def test_full_size_vgg16_matches_the_paper() -> None:
    model = create_model("aunet_vgg16_rgb", 12)
    assert isinstance(model, Detector)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs) == 13
    assert [(m.in_features, m.out_features) for m in linears] == [(512 * 7 * 7, 4096), (4096, 4096), (4096, 12)]
    # VGG16 without BN: 14.71M conv + 102.76M fc6 + 16.78M fc7 + head
    assert sum(p.numel() for p in model.parameters()) == 134_309_708
    horizontal = create_model("aunet_vgg16_horizontal", 12)
    assert horizontal.encoder.stages["fc6"].fc6.in_features == 512 * 7 * 14  # type: ignore[union-attr,index]


def test_full_size_mobilenetv2_forward_224x448() -> None:
    model = create_model("mobilenetv2_horizontal", 12).eval()
    with torch.no_grad():
        y = model(torch.randn(1, 3, 224, 448))
    assert y.shape == (1, 12)
    # torchvision's mobilenet_v2 has 3,504,872 parameters with 1000 classes: ours swaps the classifier
    assert sum(p.numel() for p in model.parameters()) == 3_504_872 - 1281 * 1000 + 1281 * 12


def test_channels_fusion_copies_rgb_filters_onto_flow() -> None:
    torch.manual_seed(0)
    for name in ("aunet_vgg16_channels", "mobilenetv2_channels"):
        model = create_model(name, 3, tiny=True)
        conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        assert conv.in_channels == 6
        assert torch.equal(conv.weight[:, :3], conv.weight[:, 3:])


@pytest.mark.parametrize("name", ["aunet_vgg16_pi_conv", "aunet_vgg16_pi_fc6", "aunet_vgg16_pi_fc7",
                                  "mobilenetv2_pi_conv", "mobilenetv2_pi_fc6", "mobilenetv2_pi_fc7"])
def test_two_stream_flow_is_initialised_from_rgb(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, 4, tiny=True)
    encoder = model.encoder
    assert isinstance(encoder, TwoStreamEncoder)
    rgb = encoder.rgb_stream.state_dict()
    flow = encoder.flow_stream.state_dict()
    assert rgb.keys() == flow.keys() and all(torch.equal(rgb[k], flow[k]) for k in rgb)
    # the streams are separate parameters: training one leaves the other alone
    assert {id(p) for p in encoder.rgb_stream.parameters()}.isdisjoint(id(p) for p in encoder.flow_stream.parameters())
    # averaging fusion at init: with equal stream statistics, swapping RGB and flow changes nothing
    x = tiny_input(name)
    calib = tiny_input(name, batch=4, seed=2)
    recalibrate_batchnorm(model, [torch.cat([calib[:, :3], calib[:, :3]], dim=1)])
    swapped = torch.cat([x[:, 3:], x[:, :3]], dim=1)
    with torch.no_grad():
        out, out_swapped = model(x), model(swapped)
    assert torch.isfinite(out).all()
    if name.endswith("pi_fc7"):  # late fusion: the head sees [rgb, flow] features in order, so order matters
        assert not torch.allclose(out, out_swapped)
    else:
        torch.testing.assert_close(out, out_swapped, rtol=1e-4, atol=1e-5)


def test_hydranet_freezes_the_shared_encoder_and_trains_branches() -> None:
    torch.manual_seed(0)
    for name in ("hydranet_mobilenetv2_horizontal", "hydranet_vgg16_rgb"):
        model = create_model(name, 3, tiny=True)
        assert isinstance(model, HydraNet)
        assert len(model.branches) == 3
        assert all(not p.requires_grad for p in model.encoder.parameters())
        model.train()
        assert not model.encoder.training and model.branches[0].training
        before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
        optim = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
        loss = model(tiny_input(name)).square().mean()
        loss.backward()
        optim.step()
        after = model.encoder.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before), "frozen encoder (or its BN stats) moved"
        grads = [p.grad for p in model.branches[1].parameters()]
        assert all(g is not None for g in grads) and any(float(g.abs().sum()) > 0 for g in grads if g is not None)
        unfrozen = create_model(name, 2, tiny=True, freeze=False)
        assert all(p.requires_grad for p in unfrozen.parameters())


def test_independent_ensemble_runs_one_network_per_output() -> None:
    torch.manual_seed(0)
    single = create_model("mobilenetv2_rgb", 4, tiny=True)
    model = create_model("mobilenetv2_rgb", 4, tiny=True, independent=True).eval()
    assert isinstance(model, Ensemble) and len(model.members) == 4
    x = tiny_input("mobilenetv2_rgb")
    with torch.no_grad():
        y = model(x)
        cols = torch.cat([m(x) for m in model.members], dim=1)
    assert y.shape == (2, 4)
    torch.testing.assert_close(y, cols)
    n_member = sum(p.numel() for p in model.members[0].parameters())
    assert sum(p.numel() for p in model.parameters()) == 4 * n_member
    assert n_member < sum(p.numel() for p in single.parameters())  # one logit each
    with pytest.raises(ConfigError, match="independent"):
        create_model("hydranet_vgg16_rgb", 4, tiny=True, independent=True)


def test_replace_head_keeps_the_encoder() -> None:
    torch.manual_seed(0)
    model = create_model("mobilenetv2_horizontal", 7, tiny=True).eval()  # e.g. 7 expression classes (EmoNet)
    assert isinstance(model, Detector)
    encoder_state = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    out = replace_head(model, 12)
    assert out is model
    assert model.head.out_features == 12
    assert all(torch.equal(encoder_state[k], v) for k, v in model.encoder.state_dict().items())
    assert model(tiny_input("mobilenetv2_horizontal")).shape == (2, 12)

    hydra = create_model("hydranet_mobilenetv2_rgb", 1, tiny=True)
    replace_head(hydra, 5)
    assert isinstance(hydra, HydraNet) and hydra.num_outputs == 5
    ens = create_model("aunet_vgg16_rgb", 1, tiny=True, independent=True)
    replace_head(ens, 3)
    assert isinstance(ens, Ensemble) and ens(tiny_input("aunet_vgg16_rgb")).shape == (2, 3)
    with pytest.raises(ConfigError, match="create_model"):
        replace_head(nn.Linear(3, 3), 2)
