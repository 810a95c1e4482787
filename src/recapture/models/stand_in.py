"""Stand-ins for parts the source does not show at all (``CorrespondenceConfig.stand_ins``, docs/correspondence.md),
and for the back of a head the source shows from the front (``CorrespondenceConfig.back_of_head_fill``).

The correspondence head copies each target pixel from where the source shows it. A target layout may ask for a
part the source has none of - most of all an edited one: ``lower=shorts`` on a person in jeans asks for bare legs,
``lower=skirt`` for a skirt, ``upper=coat`` for a coat - and then the copied pixels are those of whatever the prior
lands on (the jeans stay jeans). Like LGR, which infers an unseen part from the parts related to it, the stand-in
takes the appearance of the part's kin that the source does show: skin from skin (arms and legs), an upper garment
from the other upper garments, a lower garment from the other lower ones (a dress or jumpsuit is both). Its colour
is the mean colour of those source pixels (area-weighted), painted flat over the part; the pixels are marked
invented. Parts the source shows, and parts without a shown kin, keep the network's output.

A target that turns its back on a source seen from the front asks for the back of the head, which the source does
not show either: the warp carries the face along there (the back-of-head rule's mirrored hair, at the full size,
leaves a mosaic of hair blocks and face fragments). Its hair pixels whose coarse sample lands on the source face
take the source hair's mean colour (:func:`back_of_head_fill`), painted and marked invented like a stand-in.
Parameter-free and made of tensor operations, so the ONNX graph carries both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from recapture.body.parts import LabelSet

#: Kin groups by part name; a part absent from the source takes the mean colour of its groups' parts it shows.
KIN: tuple[tuple[str, ...], ...] = (("left_arm", "right_arm", "left_leg", "right_leg"),
                                    ("upper_clothes", "coat", "dress", "jumpsuits"),
                                    ("pants", "skirt", "dress", "jumpsuits"))
#: Source pixels (at the internal size) a kin part needs to lend its colour.
MIN_PIXELS = 4.0


def kin_matrix(label_set: LabelSet) -> Tensor:
    """``(N, N)`` float: entry ``[c, d]`` is 1 when ``d`` is kin of ``c`` (same :data:`KIN` group, ``d != c``)."""
    size = label_set.num_parts
    matrix = torch.zeros(size, size)
    for group in KIN:
        members = [label_set.index(name) for name in group if name in label_set.names]
        for c in members:
            for d in members:
                if c != d:
                    matrix[c, d] = 1.0
    return matrix


def stand_ins(small_source: Tensor, source_layout: Tensor, target_layout: Tensor, kin: Tensor, flow: Tensor
              ) -> tuple[Tensor, Tensor]:
    """``(absent, colour)`` at the internal size: ``absent`` ``(B, 1, h, w)`` the target pixels of parts the source
    has no pixel of but shows kin of (at least :data:`MIN_PIXELS` each), where ``flow`` ``(B, h, w, 2)`` (the coarse
    sampling grid) does not land on that kin (a skirt sampled from the trousers keeps their texture; the legs below
    it, sampled from the trousers too, take the skin's colour); ``colour`` ``(B, 3, h, w)`` the stand-in colour of
    every pixel of such a part (0 on the others). ``small_source`` ``(B, 3, h, w)``, soft one-hot layouts
    ``(B, N, h, w)``, ``kin`` from :func:`kin_matrix`. A rule, not learned: no gradient flows through the layouts or
    the flow."""
    kin = kin.to(small_source)
    source_layout, target_layout, flow = source_layout.detach(), target_layout.detach(), flow.detach()
    area = source_layout.sum(dim=(2, 3))
    sums = torch.einsum("bnhw,bchw->bnc", source_layout, small_source)
    lenders = kin[None] * (area >= MIN_PIXELS).to(kin)[:, None, :]  # (B, N, N): the shown kin of each part
    total = torch.einsum("bcd,bd->bc", lenders, area)
    colours = torch.einsum("bcd,bdk->bck", lenders, sums) / total.clamp_min(1e-6)[..., None]
    wanted = (area < 0.5).to(kin) * (total > 0).to(kin)  # background has no kin, so never wanted
    landed = F.grid_sample(source_layout, flow.to(source_layout), mode="bilinear", padding_mode="border",
                           align_corners=True)
    on_kin = torch.einsum("cd,bdhw->bchw", kin, landed).clamp(0.0, 1.0)
    absent = torch.einsum("bn,bnhw->bhw", wanted, target_layout * (1.0 - on_kin))[:, None]
    colour = torch.einsum("bnk,bnhw->bkhw", colours * wanted[..., None], target_layout)
    return absent.clamp(0.0, 1.0), colour


def back_of_head_fill(small_source: Tensor, source_layout: Tensor, target_layout: Tensor, flow: Tensor,
                      turned: Tensor, hair: int, faces: list[int]) -> tuple[Tensor, Tensor]:
    """``(painted, colour)`` at the internal size, as :func:`stand_ins`' pair, for pairs that turn the person's back
    (``turned`` ``(B,)`` 1, ``part_maps.turns_back``): the target hair pixels whose coarse ``flow`` ``(B, h, w, 2)``
    lands on the source's ``faces`` (face, sunglasses) take the mean colour of the source ``hair`` (the back of the
    head, where the warp would carry the face along), when the source shows hair (:data:`MIN_PIXELS`); ``colour``
    is that colour weighted by the target's hair on every target hair pixel of those pairs (0 elsewhere). A rule,
    not learned: no gradient flows through the layouts or the flow."""
    source_layout, target_layout, flow = source_layout.detach(), target_layout.detach(), flow.detach()
    hair_map = source_layout[:, hair]
    area = hair_map.sum(dim=(1, 2))
    mean = torch.einsum("bhw,bchw->bc", hair_map, small_source) / area.clamp_min(1e-6)[:, None]
    on_face = F.grid_sample(source_layout[:, faces].sum(dim=1, keepdim=True), flow.to(source_layout),
                            mode="bilinear", padding_mode="border", align_corners=True).clamp(0.0, 1.0)
    chosen = (turned.to(area) * (area >= MIN_PIXELS).to(area)).view(-1, 1, 1, 1)
    target_hair = chosen * target_layout[:, hair:hair + 1]
    return target_hair * on_face, mean[:, :, None, None] * target_hair
