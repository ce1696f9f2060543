# Copyright (c) muscle_mm contributors. All rights reserved.
"""Leakage audit: the same radiograph across datasets and splits."""
from .hashing import (FLIP_MASK, HashCache, content_hash, decode_grey,
                      hamming, hash_images, perceptual_hash, to_words)
from .overlap import (DEFAULT_THRESHOLD, Audit, format_matrix, leakage,
                      list_images, pair_matrix, pairs_csv, planted_scores,
                      read_planted, run_audit, stage1_exclusions, summary)
from .pairs import near_pairs, near_pairs_brute

__all__ = [
    'FLIP_MASK', 'HashCache', 'content_hash', 'decode_grey', 'hamming',
    'hash_images', 'perceptual_hash', 'to_words', 'DEFAULT_THRESHOLD', 'Audit',
    'format_matrix', 'leakage', 'list_images', 'pair_matrix', 'pairs_csv',
    'planted_scores', 'read_planted', 'run_audit', 'stage1_exclusions',
    'summary', 'near_pairs', 'near_pairs_brute'
]
