import hashlib
import hmac

import pytest

from shared.domain.contract import Subject
from shared.domain.pseudonym import Pseudonymiser

SECRET = b"k" * 32


def test_the_same_person_written_two_ways_gets_one_pseudonym() -> None:
    pseudonymiser = Pseudonymiser(SECRET)
    short = Subject(national_id="811218-9876").pseudonym(pseudonymiser)
    long = Subject(national_id="19811218-9876").pseudonym(pseudonymiser)
    assert short == long
    assert len(short) == 64


def test_an_auditor_given_the_secret_recomputes_the_pseudonym_with_plain_hmac() -> None:
    pseudonymiser = Pseudonymiser(SECRET)
    subject = Subject(national_id="19811218-9876")
    expected = hmac.new(SECRET, b"national_id:198112189876", hashlib.sha256).hexdigest()
    assert subject.pseudonym(pseudonymiser) == expected
    assert subject.pseudonym(pseudonymiser) == expected  # the keyed state is not used up


def test_pseudonyms_depend_on_the_secret() -> None:
    subject = Subject(ref="crm:4711")
    assert subject.pseudonym(Pseudonymiser(SECRET)) != subject.pseudonym(Pseudonymiser(b"x" * 32))


def test_a_ref_that_looks_like_a_national_id_is_another_subject() -> None:
    pseudonymiser = Pseudonymiser(SECRET)
    as_id = Subject(national_id="198112189876").pseudonym(pseudonymiser)
    as_ref = Subject(ref="198112189876").pseudonym(pseudonymiser)
    assert as_id != as_ref


def test_the_pseudonym_does_not_contain_the_identifier() -> None:
    pseudonym = Subject(national_id="19811218-9876").pseudonym(Pseudonymiser(SECRET))
    assert "198112189876" not in pseudonym


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Pseudonymiser(b"short")


def test_reprs_hide_the_secret_and_the_identifier() -> None:
    assert "k" * 8 not in repr(Pseudonymiser(SECRET))
    subject = Subject(national_id="19811218-9876")
    assert "9876" not in repr(subject)
    assert "9876" not in str(subject)
