"""saliency-bench-sanity-2023: three sanity checks written against saliency-bench's public check API.

- ``data_randomization``: Adebayo et al. 2018, section 4 (the map against a random-label twin's).
- ``emprt``: Hedström et al. 2023, eMPRT (map complexity after full randomisation over before).
- ``smprt``: Hedström et al. 2023, sMPRT (MPRT on maps averaged over noisy inputs).

The entry point names ``saliency_bench_sanity_2023.plugin``.
"""
__version__ = "0.1.0"
