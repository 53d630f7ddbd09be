"""RFC 9162 §2.1 hashing in ``carnet.audit.receipt``: the root is MTH as the RFC defines it recursively, and every
leaf's inclusion proof leads to it, for trees of every size up to 40; a proof for another leaf or index does not
(the tree size is part of the signed checkpoint)."""

from __future__ import annotations

import hashlib

from carnet.audit.receipt import inclusion_proof, leaf_bytes, leaf_hash, merkle_root, node_hash, root_from_proof


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1, word for word: split at the largest power of two smaller than n."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def test_the_root_is_rfc_9162_mth_and_every_proof_leads_to_it() -> None:
    for size in range(1, 41):
        raw = [leaf_bytes(f"chain-{i}", i + 1, f"{i:064x}") for i in range(size)]
        leaves = [leaf_hash(r) for r in raw]
        root = merkle_root(leaves)
        assert root == mth(leaves)
        for index in range(size):
            proof = inclusion_proof(index, leaves)
            assert root_from_proof(index, size, raw[index], proof) == root
            other = (index + 1) % size
            if other != index:
                assert root_from_proof(index, size, raw[other], proof) != root
                assert root_from_proof(other, size, raw[index], proof) != root
            assert root_from_proof(index + size, size, raw[index], proof) is None  # no such leaf


def test_a_leaf_is_domain_separated_from_a_node() -> None:
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert merkle_root([a, b]) != leaf_hash(a + b) and merkle_root([a, b]) == node_hash(a, b)
