"""The OpenAPI document and the interactive documentation served under ``/parapheur-ws/``: every endpoint of
spec §4.2 with its verb and path, French descriptions, multipart field names, no CDN."""

from __future__ import annotations

from tests.api.rest.conftest import Rest

EXPECTED = {
    ("get", "/rest/v1/documents/v2/{document_id}/download"),
    ("post", "/rest/v1/documents/v2/{siren}/{circuit_id}/upload"),
    ("post", "/rest/v1/documents/ondemand/{siren}/upload"),
    ("put", "/rest/v1/documents/v2/{document_id}/metadata/define"),
    ("put", "/rest/v1/documents/v2/otp/{document_id}/metadata/define"),
    ("get", "/rest/v1/documents/v2/{document_id}/history"),
    ("get", "/rest/v1/documents/v2/{document_id}/getFdc"),
    ("get", "/rest/v1/documents/{document_id}/metas"),
    ("get", "/rest/v1/documents/v2/{document_id}/metas"),
    ("delete", "/rest/v1/documents/v2/{document_id}"),
    ("get", "/rest/v1/documents/v2/{document_id}/ack/download"),
    ("get", "/rest/v1/documents/v2/{document_id}/pes-retour/download"),
    ("get", "/rest/v1/documents/v2/{document_id}/chorus/download"),
    ("get", "/rest/v1/documents/v2/{siren}/ack/remaining"),
    ("get", "/rest/v1/documents/v2/{siren}/chorus/remaining"),
    ("get", "/rest/v1/documents/v2/{siren}/pes-retour/remaining"),
    ("get", "/rest/v1/documents/v2/{siren}/signed/remaining"),  # Parafe extension (listRemainingSignedDocs)
    ("get", "/rest/v1/documents/v2/{document_id}/comments/refusal"),
    ("get", "/rest/v1/documents/v2/otp/url"),
    ("post", "/rest/v1/documents/v2/otp/{siren}/{circuit_id}/upload"),
    ("get", "/rest/v1/documents/v2/{siren}/sms/history"),  # Parafe extension (getSMSHistory has no REST twin)
    ("get", "/rest/v1/exportUsersData"),
    ("get", "/rest/v1/documents/search"),
    ("post", "/rest/v1/documents/search"),
    ("put", "/rest/v1/synchronization/{siren}/users"),
    ("get", "/rest/v1/compliance"),  # Parafe extension for integrators (issue 21)
    ("get", "/rest/v1/documents/v2/{siren}/circuits"),  # Parafe extension (getCircuits has no REST twin)
}

FIELDS = {
    ("post", "/rest/v1/documents/v2/{siren}/{circuit_id}/upload"): {"content", "label", "comment",
                                                                     "emailDestinataire"},
    ("post", "/rest/v1/documents/ondemand/{siren}/upload"): {"doc", "circuit", "annexes", "agents", "comment",
                                                             "email_destinataire", "email_CC", "pictograms"},
    ("put", "/rest/v1/documents/v2/{document_id}/metadata/define"): {"meta"},
    ("put", "/rest/v1/documents/v2/otp/{document_id}/metadata/define"): {"otpinformation"},
    ("post", "/rest/v1/documents/v2/otp/{siren}/{circuit_id}/upload"): {"document", "meta", "label", "comment",
                                                                         "referer"},
}


def test_openapi_document(rest: Rest) -> None:
    with rest.client() as c:  # public: no certificate needed to read the documentation
        doc = c.get("/parapheur-ws/openapi.json").json()
    operations = {(verb, path): op for path, item in doc["paths"].items() for verb, op in item.items()}
    assert set(operations) == EXPECTED
    for key, op in operations.items():
        assert op["summary"], key
        assert op["description"], key
        assert "401" in op["responses"], key
    for key, names in FIELDS.items():
        schema = operations[key]["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert set(schema["properties"]) == names, key
    upload = operations[("post", "/rest/v1/documents/v2/{siren}/{circuit_id}/upload")]
    assert "triplet" in upload["description"]
    assert "text/plain" in upload["responses"]["200"]["content"]


def test_interactive_docs_without_cdn(rest: Rest) -> None:
    with rest.client() as c:
        r = c.get("/parapheur-ws/", follow_redirects=True)
        assert r.status_code == 200
        assert str(r.url).endswith("/parapheur-ws/docs")
        assert "/parapheur-ws/openapi.json" in r.text
        assert "cdn" not in r.text.lower()
        js = c.get("/parapheur-ws/static/swagger-ui/swagger-ui-bundle.js")
        assert js.status_code == 200
        assert len(js.content) > 100_000
        assert c.get("/parapheur-ws/static/swagger-ui/swagger-ui.css").status_code == 200
