"""Media Streams tokens: only ASCII digits, and garbage never raises (issue 11, defect 5)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from voicecall.calls import stream_tokens

KEY = stream_tokens.derive_key("secret")
SID = "CA" + "0" * 32
CALL = "call-1"
NOW = 1_000.0
EXPIRES = 1_060


def _check(token: str, *, current: int = 1, used: int = 0) -> stream_tokens.Claim:
    return stream_tokens.check(
        KEY,
        token,
        call_sid=SID,
        call_id=CALL,
        now=NOW,
        current_generation=current,
        used_generation=used,
    )


def _mac(generation: int, expires: int) -> str:
    token = stream_tokens.mint(
        KEY, call_sid=SID, call_id=CALL, generation=generation, expires=expires
    )
    return token.rsplit(".", 1)[1]


def test_a_minted_token_is_accepted_once() -> None:
    token = stream_tokens.mint(KEY, call_sid=SID, call_id=CALL, generation=1, expires=EXPIRES)
    assert _check(token) == stream_tokens.Claim(True, generation=1)
    assert not _check(token, used=1).ok


def test_non_ascii_digits_are_refused_even_with_the_right_mac() -> None:
    # "\u0661" is ARABIC-INDIC DIGIT ONE: str.isdigit() says yes and int() reads 1
    mac = _mac(1, EXPIRES)
    for token in (
        f"\u0661.{EXPIRES}.{mac}",
        "1." + str(EXPIRES).replace("1", "\u0661") + f".{mac}",
        f"\uff11.{EXPIRES}.{mac}",  # FULLWIDTH DIGIT ONE
        f"1.{EXPIRES}.{mac[:-1]}\u0661",
    ):
        claim = _check(token)
        assert claim == stream_tokens.Claim(False, reason="malformed token"), token


def test_signs_and_spaces_are_not_digits() -> None:
    mac = _mac(1, EXPIRES)
    for token in (f"+1.{EXPIRES}.{mac}", f" 1.{EXPIRES}.{mac}", f"1.{EXPIRES}_0.{mac}"):
        assert _check(token).reason == "malformed token", token


_PIECE = st.text(
    alphabet=st.sampled_from("0123456789\u0661\u0662\u06f1\u0967\uff11\u00b2.abc+- _\x00"),
    max_size=12,
)


@given(st.one_of(st.text(max_size=200), st.builds("{}.{}.{}".format, _PIECE, _PIECE, _PIECE)))
def test_any_text_gives_a_claim_never_an_exception(token: str) -> None:
    claim = _check(token)
    if claim.ok:  # only our own token for generation 1 can pass
        assert token.isascii()
        assert token == stream_tokens.mint(
            KEY, call_sid=SID, call_id=CALL, generation=1, expires=int(token.split(".")[1])
        )


@given(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**12),
    st.sampled_from(["٠١٢٣٤٥٦٧٨٩", "０１２３４５６７８９", "०१२३४५६७८९"]),
)
def test_a_valid_token_rewritten_in_other_digits_is_refused(
    generation: int, expires: int, digits: str
) -> None:
    token = stream_tokens.mint(
        KEY, call_sid=SID, call_id=CALL, generation=generation, expires=expires
    )
    gen, exp, mac = token.split(".")
    table = str.maketrans("0123456789", digits)
    for forged in (f"{gen.translate(table)}.{exp}.{mac}", f"{gen}.{exp.translate(table)}.{mac}"):
        assert _check(forged, current=generation, used=-1).reason == "malformed token"
