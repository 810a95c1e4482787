"""Networks and objectives of "Recapture as You Want" (Gao et al.).

| module | contents |
|---|---|
| generator.py | RecaptureGenerator (geometric + appearance), GeneratorOutput, SatAttention |
| geometric.py | GeometricGenerator: (source_layout, source_pose, target_pose) -> target layout logits |
| appearance.py | AppearanceGenerator (encoder, decoder with SAT and LGR), LayoutEncoder (target signals) |
| sat.py | SemanticAttentiveTransfer, part_attention (sparse), dense_part_attention (reference) |
| lgr.py | LayoutGraphReasoning, masked_average |
| discriminators.py | Discriminators (D1 layout, D2 pose, D3 identity), PatchDiscriminator, PatchLogits |
| losses.py | GAN forms, cross entropy, discriminator_objective / generator_objective (eqs. 17-18) |
| perceptual.py | VGG-19 conv1_2 perceptual loss loaded from a local file |
| blocks.py | spectral-normed convs, residual blocks, encoders, config validation |
| layout_ops.py | one-hot, straight-through one-hot, layouts at a feature level, blob layouts |
"""
