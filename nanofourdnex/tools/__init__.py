"""Tooling around the method, not the method itself: `nano4d plan` (sizes, FLOPs, memory), `curate` (§3's
filters over a data root), `ablate` (§4.2's fusion strategies in miniature, with `fusion_variants`)."""
