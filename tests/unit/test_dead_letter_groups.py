"""Error fingerprints: what differs from letter to letter is masked, what tells errors apart is kept."""

from __future__ import annotations

import pytest

from outbox.dead_letter_groups import fingerprint, parse_group
from outbox.errors import InvalidArgument


def test_addresses_ids_and_long_numbers_are_masked_protocol_codes_kept():
    one = fingerprint("PermanentError: SMTP 550 (b'5.1.1 <a-1f2e3d4c@example.com>: unknown user', 'x')")
    two = fingerprint("PermanentError: SMTP 550 (b'5.1.1 <zoe@shop.example.org>: unknown user', 'x')")
    assert one == two
    policy = fingerprint("PermanentError: SMTP 554 (b'5.7.1 <a@example.com>: policy rejection', 'x')")
    assert policy != one and "554" in policy
    masked = fingerprint("TransientError: order 3fa85f64-5717-4562-b3fc-2c963f66afa6 after 12.5s, 123456 B")
    assert masked == "TransientError: order <id> after <n>s, <n> B"
    assert fingerprint(None) == "(no error recorded)"


def test_a_group_name_must_be_what_the_listing_showed():
    assert parse_group("0123456789ab@42") == ("0123456789ab", 42)
    for bad in ("", "0123456789ab", "xyz@1", "0123456789ab@x"):
        with pytest.raises(InvalidArgument):
            parse_group(bad)
