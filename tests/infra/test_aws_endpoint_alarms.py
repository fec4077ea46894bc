"""AWS endpoint (Lambda + Function URL) and alarms (topic, trainer and endpoint alarms, budget, dashboard)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pulumi
import pytest

from infra.launch import GPU_IDLE_PERCENT
from infra.mocks import Declared, StackRun, read_config, run_stack, stack_file
from tests.infra.conftest import stack

STACKS = ["aws-dev", "aws-prod"]
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def one(run: StackRun, type_token: str) -> Declared:
    (resource,) = run.of_type(type_token)
    return resource


def alarms(run: StackRun, part: str) -> list[Declared]:
    return sorted((r for r in run.of_type(ALARM) if f"-alarms-{part}" in r.name), key=lambda r: r.name)


@pytest.fixture(scope="module")
def public_dev() -> StackRun:
    config = copy.deepcopy(read_config(stack_file("aws-dev")))
    config["cloud-ai:endpoint"]["public"] = True
    return run_stack("aws-dev", config)


@pytest.mark.parametrize("name", STACKS)
def test_function_runs_the_function_image_with_the_configured_limits(name: str) -> None:
    run = stack(name)
    function = one(run, "aws:lambda/function:Function")
    endpoint = run.config["cloud-ai:endpoint"]

    assert function.inputs["packageType"] == "Image"
    assert function.inputs["imageUri"] == run.outputs["images"]["function"]
    assert function.inputs["memorySize"] == endpoint["memoryMb"]
    assert function.inputs["timeout"] == endpoint["timeoutSeconds"]
    assert function.inputs["reservedConcurrentExecutions"] == endpoint["maxConcurrency"]
    assert function.inputs["environment"] == {
        "variables": {"MODEL_STORE": run.outputs["storeUrl"], "MODEL_NAME": "image-classifier"}
    }
    log_group = one(run, "aws:cloudwatch/logGroup:LogGroup")
    assert function.inputs["loggingConfig"]["logGroup"] == log_group.inputs["name"]
    assert log_group.inputs["retentionInDays"] == (90 if name == "aws-prod" else 14)


@pytest.mark.parametrize("name", STACKS)
def test_private_endpoints_take_only_signed_requests(name: str) -> None:
    run = stack(name)

    assert one(run, "aws:lambda/functionUrl:FunctionUrl").inputs["authorizationType"] == "AWS_IAM"
    assert run.of_type("aws:lambda/permission:Permission") == []


def test_a_public_dev_endpoint_is_open_only_through_its_url(public_dev: StackRun) -> None:
    url = one(public_dev, "aws:lambda/functionUrl:FunctionUrl")
    permissions = {
        p.inputs["action"]: p.inputs for p in public_dev.of_type("aws:lambda/permission:Permission")
    }

    assert url.inputs["authorizationType"] == "NONE"
    assert permissions["lambda:InvokeFunctionUrl"]["functionUrlAuthType"] == "NONE"
    assert permissions["lambda:InvokeFunction"]["invokedViaFunctionUrl"] is True
    assert {p["principal"] for p in permissions.values()} == {"*"}
    assert len(public_dev.resources) == len(stack("aws-dev").resources) + 2
    assert public_dev.duplicate_names() == []


@pulumi.runtime.test
def test_function_url_auth_type_follows_the_stack() -> pulumi.Output[None]:
    endpoint = stack("aws-prod").program["deployment"].endpoint

    def check(values: list[str]) -> None:
        auth, url = values
        assert auth == "AWS_IAM"
        assert url.startswith("https://") and url.endswith(".lambda-url.us-east-1.on.aws/")

    return pulumi.Output.all(endpoint.function_url.authorization_type, endpoint.url).apply(check)


@pytest.mark.parametrize("name", STACKS)
def test_function_role_reads_only_its_model_and_writes_only_its_logs(name: str) -> None:
    run = stack(name)
    (policy,) = [r for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if "endpoint" in r.name]
    found = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    bucket = one(run, "aws:s3/bucket:Bucket").state["arn"]
    log_group = one(run, "aws:cloudwatch/logGroup:LogGroup").state["arn"]

    assert set(found) == {"ListModelVersions", "ReadModel", "OwnLogs"}
    assert found["ReadModel"]["Action"] == "s3:GetObject"
    assert found["ReadModel"]["Resource"] == f"{bucket}/models/image-classifier/*"
    assert found["ListModelVersions"]["Condition"] == {
        "StringLike": {"s3:prefix": ["models/image-classifier", "models/image-classifier/*"]}
    }
    assert found["OwnLogs"]["Resource"] == f"{log_group}:*"
    assert found["OwnLogs"]["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]


@pytest.mark.parametrize("name", STACKS)
def test_repository_lets_only_this_function_pull(name: str) -> None:
    run = stack(name)
    (statement,) = json.loads(one(run, "aws:ecr/repositoryPolicy:RepositoryPolicy").inputs["policy"])[
        "Statement"
    ]

    assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert statement["Action"] == ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    assert statement["Condition"]["StringLike"]["aws:sourceArn"] == (
        f"arn:aws:lambda:us-east-1:123456789012:function:cloud-ai-{name}-endpoint"
    )


@pytest.mark.parametrize("name", STACKS)
def test_topic_mails_the_on_call_address(name: str) -> None:
    run = stack(name)
    subscription = one(run, "aws:sns/topicSubscription:TopicSubscription")

    assert subscription.inputs["protocol"] == "email"
    assert subscription.inputs["endpoint"] == "ml-oncall@example.com"
    assert subscription.inputs["topic"] == run.outputs["alarmTopic"]


@pytest.mark.parametrize("name", STACKS)
def test_idle_gpus_stop_each_trainer(name: str) -> None:
    run = stack(name)
    topic = run.outputs["alarmTopic"]
    minutes = run.config["cloud-ai:trainer"]["idleStopMinutes"]
    idle = alarms(run, "gpu-idle")

    assert [a.inputs["dimensions"] for a in idle] == [{"InstanceId": i} for i in run.outputs["trainerIds"]]
    for alarm in idle:
        assert (alarm.inputs["namespace"], alarm.inputs["metricName"]) == (
            "CWAgent",
            "nvidia_smi_utilization_gpu",
        )
        assert alarm.inputs["statistic"] == "Maximum"
        assert alarm.inputs["period"] == 60
        assert alarm.inputs["evaluationPeriods"] == minutes
        assert alarm.inputs["comparisonOperator"] == "LessThanThreshold"
        assert alarm.inputs["threshold"] == GPU_IDLE_PERCENT
        assert alarm.inputs["alarmActions"] == ["arn:aws:automate:us-east-1:ec2:stop", topic]


@pytest.mark.parametrize(
    ("name", "actions"), [("aws-dev", []), ("aws-prod", ["arn:aws:automate:us-east-1:ec2:recover"])]
)
def test_failed_system_checks_recover_on_demand_trainers(name: str, actions: list[str]) -> None:
    run = stack(name)
    checks = alarms(run, "system-check")

    assert [a.inputs["dimensions"] for a in checks] == [{"InstanceId": i} for i in run.outputs["trainerIds"]]
    for alarm in checks:
        assert (alarm.inputs["namespace"], alarm.inputs["metricName"]) == (
            "AWS/EC2",
            "StatusCheckFailed_System",
        )
        assert alarm.inputs["comparisonOperator"] == "GreaterThanThreshold"
        assert alarm.inputs["threshold"] == 0
        assert alarm.inputs["alarmActions"] == [*actions, run.outputs["alarmTopic"]]


@pytest.mark.parametrize("name", STACKS)
def test_endpoint_error_rate_is_errors_over_invocations(name: str) -> None:
    run = stack(name)
    (alarm,) = alarms(run, "error-rate")
    queries = {q["id"]: q for q in alarm.inputs["metricQueries"]}
    function = one(run, "aws:lambda/function:Function").inputs["name"]

    assert queries["rate"]["expression"] == "100 * errors / invocations"
    assert queries["rate"]["returnData"] is True
    for query_id, metric in (("errors", "Errors"), ("invocations", "Invocations")):
        assert queries[query_id]["metric"]["metricName"] == metric
        assert queries[query_id]["metric"]["dimensions"] == {"FunctionName": function}
        assert queries[query_id]["metric"]["stat"] == "Sum"
    assert alarm.inputs["threshold"] == run.config["cloud-ai:alarms"]["errorRatePercent"]
    assert alarm.inputs["comparisonOperator"] == "GreaterThanThreshold"
    assert alarm.inputs["alarmActions"] == [run.outputs["alarmTopic"]]


@pytest.mark.parametrize("name", STACKS)
def test_endpoint_throttles_and_p99_latency_notify_the_topic(name: str) -> None:
    run = stack(name)
    (throttles,) = alarms(run, "throttles")
    (latency,) = alarms(run, "p99-latency")

    assert (throttles.inputs["metricName"], throttles.inputs["threshold"]) == ("Throttles", 0)
    assert latency.inputs["metricName"] == "Duration"
    assert latency.inputs["extendedStatistic"] == "p99"
    assert latency.inputs["threshold"] == run.config["cloud-ai:alarms"]["p99LatencyMs"]
    for alarm in (throttles, latency):
        assert alarm.inputs["namespace"] == "AWS/Lambda"
        assert alarm.inputs["alarmActions"] == [run.outputs["alarmTopic"]]


@pytest.mark.parametrize("name", STACKS)
def test_monthly_budget_of_this_stack_mails_at_80_and_100_percent(name: str) -> None:
    run = stack(name)
    budget: dict[str, Any] = one(run, "aws:budgets/budget:Budget").inputs

    assert (budget["budgetType"], budget["timeUnit"], budget["limitUnit"]) == ("COST", "MONTHLY", "USD")
    assert float(budget["limitAmount"]) == run.config["cloud-ai:alarms"]["monthlyBudgetUsd"]
    assert budget["costFilters"] == [{"name": "TagKeyValue", "values": [f"user:stack${name}"]}]
    assert sorted(n["threshold"] for n in budget["notifications"]) == [80, 100]
    for notification in budget["notifications"]:
        assert notification["thresholdType"] == "PERCENTAGE"
        assert notification["subscriberEmailAddresses"] == ["ml-oncall@example.com"]


@pytest.mark.parametrize("name", STACKS)
def test_dashboard_charts_every_trainer_and_the_function(name: str) -> None:
    run = stack(name)
    body = json.loads(one(run, "aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    charted = json.dumps(body)

    assert len(body["widgets"]) == 4
    for instance_id in run.outputs["trainerIds"]:
        assert instance_id in charted
    assert f"cloud-ai-{name}-endpoint" in charted
