
import grpc

from services.common.errors import InvalidArgument, NotFound, ResourceExhausted, StageError, status_for


def test_stage_errors_keep_code_and_message():
    assert status_for(InvalidArgument("text: empty")) == (grpc.StatusCode.INVALID_ARGUMENT, "text: empty")
    assert status_for(NotFound("voice: 'x'"))[0] == grpc.StatusCode.NOT_FOUND
    assert status_for(ResourceExhausted("full"))[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status_for(StageError("busy", grpc.StatusCode.UNAVAILABLE)) == (grpc.StatusCode.UNAVAILABLE, "busy")


def test_timeouts_are_deadline_exceeded():
    assert status_for(TimeoutError())[0] == grpc.StatusCode.DEADLINE_EXCEEDED


def test_unexpected_errors_are_internal_without_details():
    code, message = status_for(KeyError("secret-internal-key"))
    assert code == grpc.StatusCode.INTERNAL
    assert "secret-internal-key" not in message and "KeyError" in message
