"""The ticket sink's HTTP calls, against a local server standing in for a webhook and Jira."""

import base64

from licensing_pipeline.remediation.ticket_sink import TicketSink, jira_issue
from licensing_pipeline_tests.remediation.fakes import FakeTicketSystem, Reply
from licensing_pipeline_tests.remediation.test_messages import ticket

SECRET = "jira-api-token-secret"


def jira(fake: FakeTicketSystem, **kwargs) -> TicketSink:
    return TicketSink(
        jira_url=fake.url,
        jira_email="bot@example.com",
        jira_api_token=SECRET,
        jira_project="LIC",
        dagster_url="http://dagster.example:3000",
        backoff_seconds=0.01,
        **kwargs,
    )


def test_jira_create_issue_shape_and_the_key_as_external_id(fake_tickets: FakeTicketSystem):
    fake_tickets.default = Reply(201, {"id": "10042", "key": "LIC-42", "self": "..."})
    result = jira(fake_tickets).create(ticket())
    assert result.ok and result.external_id == "LIC-42"
    assert result.external_url == f"{fake_tickets.url}/browse/LIC-42"
    (request,) = fake_tickets.requests
    assert request.path == "/rest/api/3/issue"
    expected = base64.b64encode(f"bot@example.com:{SECRET}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    fields = request.body["fields"]
    assert fields["project"] == {"key": "LIC"}
    assert fields["issuetype"] == {"name": "Task"}
    assert fields["summary"] == "[critical] residency_violation for t-0042 (us-east-1, 2026-11)"
    assert fields["labels"] == [
        "licensing-compliance",
        "severity-critical",
        "check-residency_violation",
        "finding-f0123456789abcdef012",
    ]
    assert fields["description"]["type"] == "doc" and fields["description"]["version"] == 1
    text = " ".join(part["text"] for p in fields["description"]["content"] for part in p["content"])
    assert "Owner: ana@example.com. Due: 2026-11-23." in text
    assert "http://dagster.example:3000/assets/compliance_findings" in text


def test_the_generic_webhook_gets_the_ticket_as_json(fake_tickets: FakeTicketSystem):
    fake_tickets.default = Reply(200, {"id": "INC-7", "url": "https://tickets.example/INC-7"})
    sink = TicketSink(webhook_url=f"{fake_tickets.url}/hooks/secret-path", backoff_seconds=0.01)
    result = sink.create(ticket())
    assert (result.external_id, result.external_url) == ("INC-7", "https://tickets.example/INC-7")
    (request,) = fake_tickets.requests
    assert request.path == "/hooks/secret-path"
    assert request.headers["Idempotency-Key"] == "licensing-ticket-f0123456789abcdef012"
    body = request.body
    assert body["event"] == "remediation_ticket.opened"
    assert body["ticket"]["ticket_id"] == 7
    assert body["ticket"]["due_date"] == "2026-11-23"
    assert body["ticket"]["observed"] == 1234.0


def test_a_webhook_without_an_id_still_marks_the_ticket_exported(fake_tickets: FakeTicketSystem):
    fake_tickets.default = Reply(204, "")
    result = TicketSink(webhook_url=fake_tickets.url).create(ticket())
    assert result.ok and result.external_id == "webhook:f0123456789abcdef012"


def test_transient_failures_are_retried_with_backoff(fake_tickets: FakeTicketSystem):
    fake_tickets.script.extend([Reply(503, "busy"), Reply(429, "slow down", {"Retry-After": "0"})])
    result = jira(fake_tickets).create(ticket())
    assert result.ok and result.attempts == 3
    assert len(fake_tickets.requests) == 3


def test_a_rejected_request_is_not_retried_and_names_only_the_host(
    fake_tickets: FakeTicketSystem,
):
    fake_tickets.default = Reply(400, {"errors": {"labels": "bad"}})
    sink = TicketSink(webhook_url=f"{fake_tickets.url}/hooks/s3cr3t?token=abc", backoff_seconds=0)
    result = sink.create(ticket())
    assert not result.ok and result.attempts == 1
    assert result.error is not None and result.error.startswith(f"HTTP 400 from {fake_tickets.url}")
    assert "s3cr3t" not in result.error and "abc" not in result.error


def test_an_unreachable_system_fails_after_the_attempts():
    sink = TicketSink(webhook_url="http://127.0.0.1:9/hook", max_attempts=2, backoff_seconds=0.01)
    result = sink.create(ticket())
    assert not result.ok and result.attempts == 2
    assert result.error is not None and "cannot reach http://127.0.0.1:9" in result.error


def test_partial_jira_configuration_is_reported(fake_tickets: FakeTicketSystem):
    result = TicketSink(jira_url=fake_tickets.url, jira_project="LIC").create(ticket())
    assert not result.ok and "LICENSING_JIRA_EMAIL" in str(result.error)
    assert fake_tickets.requests == []


def test_no_secret_in_the_description_of_the_sink():
    sink = TicketSink(
        jira_url="https://acme.atlassian.net", jira_api_token=SECRET, jira_project="LIC"
    )
    assert sink.describe() == "Jira project LIC at https://acme.atlassian.net"
    assert SECRET not in repr(
        jira_issue(ticket(), project="LIC", issue_type="Task", dagster_url="")
    )


def test_a_status_change_is_a_comment_on_the_jira_issue(fake_tickets: FakeTicketSystem):
    fake_tickets.default = Reply(201, {"id": "10100"})
    resolved = ticket(
        status="resolved",
        status_reason="finding resolved",
        external_id="LIC-42",
        sink_reported_status="open",
    )
    result = jira(fake_tickets).update(resolved)
    assert result.ok
    (request,) = fake_tickets.requests
    assert request.path == "/rest/api/3/issue/LIC-42/comment"
    assert request.headers["Authorization"].startswith("Basic ")
    (paragraph,) = request.body["body"]["content"]
    assert paragraph["content"][0]["text"] == (
        "Licensing pipeline: this ticket is now resolved (finding resolved)."
    )
    assert SECRET not in str(request.body)


def resolved_ticket() -> dict:
    return ticket(
        status="resolved",
        status_reason="finding resolved",
        external_id="LIC-42",
        sink_reported_status="open",
    )


def test_a_resolution_moves_the_jira_issue_by_the_configured_transition_then_comments(
    fake_tickets: FakeTicketSystem,
):
    fake_tickets.script.extend(
        [
            Reply(200, {"key": "LIC-42", "fields": {"status": {"name": "In Progress"}}}),
            Reply(
                200,
                {
                    "transitions": [
                        {"id": "11", "name": "Stop progress", "to": {"name": "To Do"}},
                        {"id": "31", "name": "Close issue", "to": {"name": "Done"}},
                    ]
                },
            ),
            Reply(204, ""),
            Reply(201, {"id": "10100"}),
        ]
    )
    sink = jira(fake_tickets, jira_transitions={"resolved": "done"})  # status name, any case
    assert sink.update(resolved_ticket()).ok
    calls = [(r.method, r.path) for r in fake_tickets.requests]
    assert calls == [
        ("GET", "/rest/api/3/issue/LIC-42?fields=status"),
        ("GET", "/rest/api/3/issue/LIC-42/transitions"),
        ("POST", "/rest/api/3/issue/LIC-42/transitions"),
        ("POST", "/rest/api/3/issue/LIC-42/comment"),
    ]
    assert fake_tickets.requests[2].body == {"transition": {"id": "31"}}
    assert all(r.headers["Authorization"].startswith("Basic ") for r in fake_tickets.requests)


def test_an_issue_already_moved_is_not_moved_again_on_a_retry(fake_tickets: FakeTicketSystem):
    """The comment failed last time after the move: this time only the comment is sent."""
    fake_tickets.script.extend(
        [Reply(200, {"fields": {"status": {"name": "Done"}}}), Reply(201, {"id": "10101"})]
    )
    assert jira(fake_tickets, jira_transitions={"resolved": "Done"}).update(resolved_ticket()).ok
    assert [r.path for r in fake_tickets.requests] == [
        "/rest/api/3/issue/LIC-42?fields=status",
        "/rest/api/3/issue/LIC-42/comment",
    ]


def test_a_transition_jira_does_not_offer_fails_the_update_with_what_it_offers(
    fake_tickets: FakeTicketSystem,
):
    fake_tickets.script.extend(
        [
            Reply(200, {"fields": {"status": {"name": "Blocked"}}}),
            Reply(200, {"transitions": [{"id": "41", "name": "Unblock"}]}),
        ]
    )
    result = jira(fake_tickets, jira_transitions={"resolved": "Done"}).update(resolved_ticket())
    assert not result.ok
    assert result.error == "Jira offers no transition to 'Done' from 'Blocked' (offers: Unblock)"
    assert [r.method for r in fake_tickets.requests] == ["GET", "GET"]  # no comment: retried


def test_events_without_a_transition_only_comment(fake_tickets: FakeTicketSystem):
    fake_tickets.default = Reply(201, {"id": "10102"})
    sink = jira(fake_tickets, jira_transitions={"reopened": "To Do"})
    assert sink.update(resolved_ticket()).ok
    assert [r.path for r in fake_tickets.requests] == ["/rest/api/3/issue/LIC-42/comment"]
