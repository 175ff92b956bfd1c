"""The runtime's AWS clients: all made from one session, one at a time, forgotten together.

Each botocore session loads its own copy of the endpoint data and of every
service model it uses (EC2's is 22 MiB); a session is not thread-safe, so the
API's threads must not make clients from it at the same moment.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib import aws as runtime_aws

SERVICES = ("dynamodb", "stepfunctions", "ec2", "logs", "events", "scheduler")


def loader(client: Any) -> Any:
    """The data loader a client's models came from: one per session."""
    return client._loader


def test_clients_asked_for_at_once_by_many_threads_all_come_from_one_session_and_work(aws):
    runtime_aws.reset()
    with ThreadPoolExecutor(12) as pool:
        made = list(pool.map(runtime_aws.client, SERVICES * 4))
    shared = runtime_aws.session()._session.get_component("data_loader")
    assert {id(loader(c)) for c in made} == {id(shared)}
    assert [runtime_aws.client(s) for s in SERVICES] == [runtime_aws.client(s) for s in SERVICES]  # cached
    assert runtime_aws.dynamodb().describe_table(TableName=aws.table)["Table"]["TableStatus"] == "ACTIVE"
    assert runtime_aws.ec2().describe_launch_templates(
        LaunchTemplateIds=[aws.launch_template_id])["LaunchTemplates"][0]["LaunchTemplateId"] == aws.launch_template_id


def test_a_new_client_is_the_callers_own_from_the_same_session(aws):
    own = runtime_aws.new_client("ec2")
    assert own is not runtime_aws.ec2()
    assert loader(own) is loader(runtime_aws.ec2())
    assert own.meta.config.retries != runtime_aws.ec2().meta.config.retries  # the runtime's settings are its own


def test_reset_forgets_the_session_and_its_clients(aws):
    before, client = runtime_aws.session(), runtime_aws.dynamodb()
    runtime_aws.reset()
    assert runtime_aws.session() is not before
    assert runtime_aws.dynamodb() is not client
    assert loader(runtime_aws.dynamodb()) is runtime_aws.session()._session.get_component("data_loader")
