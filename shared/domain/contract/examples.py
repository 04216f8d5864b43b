"""One valid example per event type: for the docs, the API's OpenAPI page and the tests.

The identifiers are made up; 19811218-9876 is a syntactically valid test personnummer.
"""

from typing import Any

_SUBJECT = {"national_id": "19811218-9876"}
_CASE = {"case_id": "C-2023-0001"}
_CLIENT = {"client_id": "K-1001"}


def _example(event_type: str, event_id: str, occurred_at: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": event_type,
        "occurred_at": occurred_at,
        "subject": fields.pop("subject", _SUBJECT),
        **fields,
    }


EXAMPLES: dict[str, dict[str, Any]] = {
    example["type"]: example
    for example in [
        _example(
            "collection_case.closed",
            "c0a8012e-7f3a-4b8e-9d2a-1b2c3d4e5f60",
            "2023-03-15T10:00:00+01:00",
            role="debtor",
            scope=_CASE,
            data={},
        ),
        _example(
            "collection_case.reopened",
            "1f0e6a2c-3b4d-4e5f-8a9b-0c1d2e3f4a51",
            "2023-06-01T09:00:00+02:00",
            role="debtor",
            scope=_CASE,
        ),
        _example(
            "customer_relationship.ended",
            "2a1b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c52",
            "2024-01-31T17:00:00+01:00",
            role="client_guarantor",
            scope=_CLIENT,
        ),
        _example(
            "customer_relationship.settled",
            "3b2c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d63",
            "2024-04-30T17:00:00+02:00",
            role="client_guarantor",
            scope=_CLIENT,
        ),
        _example(
            "customer_relationship.resumed",
            "4c3d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e74",
            "2024-09-02T08:00:00+02:00",
            role="client_guarantor",
            scope=_CLIENT,
        ),
        _example(
            "invoice_administration.ended",
            "5d4e6f7a-8b9c-4d0e-9f1a-3b4c5d6e7f85",
            "2024-12-31T23:00:00+01:00",
            role="debtor",
            scope=_CLIENT,
        ),
        _example(
            "controller.erasure_instructed",
            "6e5f7a8b-9c0d-4e1f-8a2b-4c5d6e7f8a96",
            "2025-02-01T10:00:00+01:00",
            role="debtor",
            scope=_CLIENT,
        ),
        _example(
            "data.outdated",
            "7f6a8b9c-0d1e-4f2a-9b3c-5d6e7f8a9b07",
            "2025-03-01T10:00:00+01:00",
            role="client_contact",
            scope=_CLIENT,
            data={"category": "customer_relationship"},
        ),
        _example(
            "aml.measure_performed",
            "8a7b9c0d-1e2f-4a3b-8c4d-6e7f8a9b0c18",
            "2022-05-10T11:00:00+02:00",
            role="client_partner",
            scope={"measure_id": "KYC-55"},
        ),
        _example(
            "aml.relationship_established",
            "9b8c0d1e-2f3a-4b4c-9d5e-7f8a9b0c1d29",
            "2021-01-04T09:00:00+01:00",
            role="client_partner",
            scope={"relationship_id": "BR-9"},
        ),
        _example(
            "aml.relationship_ended",
            "ac9d1e2f-3a4b-4c5d-8e6f-8a9b0c1d2e3a",
            "2024-06-28T16:00:00+02:00",
            role="client_partner",
            scope={"relationship_id": "BR-9"},
        ),
        _example(
            "marketing.contact",
            "bd0e2f3a-4b5c-4d6e-9f7a-9b0c1d2e3f4b",
            "2024-05-02T14:30:00+02:00",
            subject={"ref": "crm:4711"},
            role="newsletter_recipient",
        ),
        _example(
            "newsletter.unsubscribed",
            "ce1f3a4b-5c6d-4e7f-8a8b-0c1d2e3f4a5c",
            "2025-02-10T08:15:00+01:00",
            subject={"ref": "crm:4711"},
            role="newsletter_recipient",
        ),
        _example(
            "bookkeeping.recorded",
            "df2a4b5c-6d7e-4f8a-9b9c-1d2e3f4a5b6d",
            "2025-01-20T09:00:00+01:00",
            role="debtor",
            data={"fiscal_year_end": "2024-12-31"},
        ),
        _example(
            "legal_hold.placed",
            "e03b5c6d-7e8f-4a9b-8c0d-2e3f4a5b6c7e",
            "2025-06-01T12:00:00+02:00",
            data={"hold_id": "H-77", "case_id": "C-2023-0001"},
        ),
        _example(
            "legal_hold.released",
            "f14c6d7e-8f9a-4b0c-9d1e-3f4a5b6c7d8f",
            "2025-10-01T12:00:00+02:00",
            data={"hold_id": "H-77"},
        ),
        _example(
            "retention.extended",
            "7b2e4c6d-8f0a-4b1c-9d3e-5f6a7b8c9d0e",
            "2026-04-20T14:00:00+02:00",
            scope=_CASE,
            data={
                "category": "collection_case",
                "until": "2027-06-30",
                "ground": "the claim is to be defended in a pending appeal (GDPR art. 17(3)(e))",
                "review_id": 12,
            },
        ),
        _example(
            "data.disclosed",
            "025d7e8f-9a0b-4c1d-8e2f-4a5b6c7d8e90",
            "2023-04-02T10:00:00+02:00",
            role="debtor",
            scope=_CASE,
            data={
                "recipient_id": "print-vendor",
                "category": "collection_case",
                "recipient_ref": "PV-88-1234",
            },
        ),
        _example(
            "data.rectified",
            "3a5b7c9d-1e2f-4a3b-8c4d-5e6f7a8b9c0d",
            "2025-03-03T11:00:00+01:00",
            role="debtor",
            scope=_CASE,
            data={"category": "collection_case"},
        ),
        _example(
            "processing.restricted",
            "4b6c8d0e-2f3a-4b4c-9d5e-6f7a8b9c0d1e",
            "2025-03-04T11:00:00+01:00",
            role="debtor",
            scope=_CASE,
            data={"category": "collection_case"},
        ),
        _example(
            "dsr.erasure_requested",
            "136e8f9a-0b1c-4d2e-9f3a-5b6c7d8e9fa1",
            "2025-09-15T13:00:00+02:00",
        ),
        _example(
            "dsr.objection",
            "247f9a0b-1c2d-4e3f-8a4b-6c7d8e9fa0b2",
            "2025-09-15T13:05:00+02:00",
            subject={"ref": "crm:4711"},
        ),
        _example(
            "consent.withdrawn",
            "358a0b1c-2d3e-4f4a-9b5c-7d8e9fa0b1c3",
            "2025-09-15T13:10:00+02:00",
            subject={"ref": "crm:4711"},
        ),
    ]
}
