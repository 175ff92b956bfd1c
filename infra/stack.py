"""The jobscheduler stack: everything `cdk deploy` puts in an AWS account.

Read ``JobSchedulerStack.__init__`` as the table of contents. Settings come
from CDK context values (``cdk deploy -c name=value``); see ``Settings``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import Validations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from chalice.cdk import Chalice
from chalice.utils import to_cfn_resource_name
from constructs import Construct

from chalicelib import config, statuses, store
from infra import definition, packaging, permissions
from infra.network import Network, NetworkSettings
from infra.schedules import Schedules

RUNTIME_DIR = Path(__file__).resolve().parent.parent / "runtime"
API_GATEWAY_STAGE = "api"
# Amazon's ECS-optimised Amazon Linux 2023: Docker and the ECS agent preinstalled.
ECS_AL2023_IMAGE = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
# Its GPU variant (NVIDIA driver and container toolkit added), for jobs that ask for GPUs.
ECS_AL2023_GPU_IMAGE = "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
API_HANDLER = "APIHandler"
# The function each recurring schedule's firing invokes (through EventBridge Scheduler, not a rule).
SCHEDULE_HANDLER = "on_schedule"
# How hard EventBridge tries to hand an event to a handler, and Lambda to run
# it (Lambda's own limit is 2 retries) before the event goes to the dead letters.
EVENT_DELIVERY_ATTEMPTS = 10
EVENT_HANDLER_RETRIES = 2
EVENT_MAX_AGE = cdk.Duration.hours(1)


@dataclass(frozen=True)
class Settings:
    """Deployment choices, each a CDK context value with a default."""

    image_parameter: str = ECS_AL2023_IMAGE
    root_volume_gib: int = 30
    log_retention_days: int = 30
    parameter_prefix: str = "/jobscheduler/"
    secret_prefix: str = "jobscheduler/"
    default_instance_types: str = ""
    throttle_rate: int = 20
    throttle_burst: int = 40
    alarm_topic_arn: str = ""
    api_gateway_log_role: bool = True
    lambda_runtime: str = packaging.DEFAULT_LAMBDA_RUNTIME
    allow_cross_account: bool = False
    gpu_image_parameter: str = ECS_AL2023_GPU_IMAGE

    @classmethod
    def from_context(cls, scope: Construct) -> Settings:
        """Defaults, overridden by any context value of the same (camelCase) name."""
        names = {"image_parameter": "imageSsmParameter", "root_volume_gib": "rootVolumeGiB",
                 "log_retention_days": "logRetentionDays", "parameter_prefix": "ssmParameterPrefix",
                 "secret_prefix": "secretNamePrefix", "default_instance_types": "defaultInstanceTypes",
                 "throttle_rate": "apiThrottleRate", "throttle_burst": "apiThrottleBurst",
                 "alarm_topic_arn": "alarmTopicArn", "api_gateway_log_role": "apiGatewayLogRole",
                 "lambda_runtime": "lambdaRuntime", "allow_cross_account": "allowCrossAccount",
                 "gpu_image_parameter": "gpuImageSsmParameter"}
        values: dict[str, Any] = {}
        for field, key in names.items():
            value = scope.node.try_get_context(key)
            if value is not None:
                values[field] = _coerce(value, type(getattr(cls, field)))
        return cls(**values)


class JobSchedulerStack(cdk.Stack):
    """Job table, workflow, API, launch template, event wiring, alarms and outputs."""

    def __init__(self, scope: Construct, construct_id: str, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = Settings.from_context(self)
        self.stack_tag = self.stack_name
        # Named, so the functions can turn it on and off without a reference cycle.
        self.sweeper_rule_name = f"{self.stack_name}-sweeper"[:64]
        self.network = Network(self, "Network", NetworkSettings.from_context(self))
        self.table = self._create_table()
        self.job_logs = self._create_log_group("JobLogs")
        self.instance_role = self._create_instance_role()
        self.launch_template = self._create_launch_template()
        self.gpu_launch_template = self._create_gpu_launch_template()
        self.state_machine = self._create_state_machine()
        self.api_role = iam.Role(self, "ApiRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                                 description="jobscheduler API and event handlers")
        self.schedules = Schedules(self, "Schedules", group_name=f"{self.stack_name}-schedules"[:64])
        self.api = self._create_api()
        self.failed_events = self._create_failed_events_queue()
        self.api_policy = self._grant_api()
        self.rules = self._wire_event_handlers()
        self.alarms = self._create_alarms()
        self._wire_schedules()
        self._create_outputs()

    # -- data -----------------------------------------------------------------

    def _create_table(self) -> dynamodb.Table:
        """The job table, built from the runtime's own CreateTable definition."""
        shape = store.table_definition("")
        types = {a["AttributeName"]: _DDB_TYPES[a["AttributeType"]] for a in shape["AttributeDefinitions"]}

        def key(schema: list[dict[str, str]], key_type: str) -> dynamodb.Attribute | None:
            names = [k["AttributeName"] for k in schema if k["KeyType"] == key_type]
            return dynamodb.Attribute(name=names[0], type=types[names[0]]) if names else None

        table = dynamodb.Table(
            self, "Jobs",
            partition_key=key(shape["KeySchema"], "HASH"), sort_key=key(shape["KeySchema"], "RANGE"),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            # Every status change, by the runtime or the workflow, reaches on_job_change.
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            # Job records outlive the stack: `cdk destroy` leaves the table.
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        for index in shape["GlobalSecondaryIndexes"]:
            if index["Projection"]["ProjectionType"] != "ALL":
                raise ValueError(f"index {index['IndexName']}: only ALL projections are mirrored")
            table.add_global_secondary_index(
                index_name=index["IndexName"], projection_type=dynamodb.ProjectionType.ALL,
                partition_key=key(index["KeySchema"], "HASH"), sort_key=key(index["KeySchema"], "RANGE"))
        return table

    def _create_log_group(self, construct_id: str, name: str | None = None) -> logs.LogGroup:
        days = self.settings.log_retention_days
        if days not in _RETENTION:
            raise ValueError(f"context logRetentionDays: {days} is not one of {sorted(_RETENTION)}")
        return logs.LogGroup(self, construct_id, log_group_name=name, retention=_RETENTION[days],
                             removal_policy=cdk.RemovalPolicy.DESTROY)

    # -- instances --------------------------------------------------------------

    def _create_instance_role(self) -> iam.Role:
        role = iam.Role(self, "InstanceRole", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
                        description="jobscheduler job instances: job logs, ECR pull, job secrets")
        permissions.attach(self, "InstancePolicy", role, permissions.instance(
            self, job_log_group_arn=self.job_logs.log_group_arn,
            parameter_prefix=self.settings.parameter_prefix, secret_prefix=self.settings.secret_prefix,
            cross_account=self.settings.allow_cross_account))
        self._allow_session_manager(role)
        return role

    def _allow_session_manager(self, role: iam.Role) -> None:
        """A failed run held for debugging is reached with SSM Session Manager: no inbound port, no key pair."""
        role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore"))
        Validations.of(role).acknowledge(cdk.Acknowledgment(
            id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]",
            reason="The AWS-maintained policy Session Manager needs on an instance, so a person can open a shell "
                   "on a job instance held for debugging without any inbound port; only EC2 can assume the role."))

    def _create_launch_template(self) -> ec2.LaunchTemplate:
        self.machine_image = ec2.MachineImage.from_ssm_parameter(self.settings.image_parameter)
        return self._job_launch_template("JobInstance", self.machine_image)

    def _create_gpu_launch_template(self) -> ec2.LaunchTemplate:
        """The GPU jobs' launch template: the same, on the GPU variant of the image."""
        self.gpu_machine_image = ec2.MachineImage.from_ssm_parameter(self.settings.gpu_image_parameter)
        return self._job_launch_template("GpuJobInstance", self.gpu_machine_image)

    def _job_launch_template(self, construct_id: str, machine_image: ec2.IMachineImage) -> ec2.LaunchTemplate:
        template = ec2.LaunchTemplate(
            self, construct_id,
            machine_image=machine_image,
            role=self.instance_role,
            security_group=self.network.security_group,
            require_imdsv2=True,
            # Containers sit one hop behind the host: hop limit 2 lets them reach IMDSv2.
            http_put_response_hop_limit=2,
            instance_metadata_tags=True,
            instance_initiated_shutdown_behavior=ec2.InstanceInitiatedShutdownBehavior.TERMINATE,
            block_devices=[ec2.BlockDevice(device_name="/dev/xvda", volume=ec2.BlockDeviceVolume.ebs(
                self.settings.root_volume_gib, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3,
                delete_on_termination=True))],
        )
        # Instant fleets tag only fleets and instances; volumes get the stack tag here.
        template.node.default_child.add_property_override(  # type: ignore[union-attr]
            "LaunchTemplateData.TagSpecifications",
            [{"ResourceType": "volume", "Tags": [{"Key": statuses.TAG_STACK, "Value": self.stack_tag}]}])
        return template

    def _launch_template_arn(self, template: ec2.LaunchTemplate) -> str:
        return permissions.ec2_arn(self, "launch-template", template.launch_template_id or "")

    # -- workflow ---------------------------------------------------------------

    def substitutions(self) -> dict[str, str]:
        """The values of the ASL file's ``${Name}`` placeholders."""
        return {"JobsTable": self.table.table_name,
                "StackTag": self.stack_tag}

    def _create_state_machine(self) -> sfn.StateMachine:
        values = self.substitutions()
        if set(values) != definition.placeholders():
            raise ValueError(f"ASL placeholders {sorted(definition.placeholders())} != {sorted(values)}")
        role = iam.Role(self, "WorkflowRole", assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
                        description="jobscheduler job workflow")
        launch = permissions.LaunchResources(
            launch_template=self._launch_template_arn(self.launch_template),
            subnets=[permissions.ec2_arn(self, "subnet", s) for s in self.network.subnet_ids],
            security_group=permissions.ec2_arn(self, "security-group",
                                               self.network.security_group.security_group_id),
            image=permissions.image_arn(self, self.machine_image.get_image(self).image_id),
            instance_role=self.instance_role.role_arn,
            gpu_launch_template=self._launch_template_arn(self.gpu_launch_template),
            gpu_image=permissions.image_arn(self, self.gpu_machine_image.get_image(self).image_id))
        permissions.attach(self, "WorkflowPolicy", role, permissions.workflow(
            self, self.table.table_arn, launch, self.stack_tag))
        # The definition comes from a file, so CDK grants nothing for its tasks:
        # every permission above is explicit and scoped.
        machine = sfn.StateMachine(
            self, "JobWorkflow",
            definition_body=sfn.DefinitionBody.from_string(definition.text()),
            definition_substitutions=values,
            role=role,
            # Under /aws/vendedlogs/ Step Functions needs no entry in the account's (size-limited)
            # CloudWatch Logs resource policy for each state machine.
            logs=sfn.LogOptions(destination=self._create_log_group(
                                    "WorkflowLogs", f"/aws/vendedlogs/states/{self.stack_name}-workflow"),
                                level=sfn.LogLevel.ALL,
                                # Inputs carry the job's user data and task tokens;
                                # the console's execution history already shows them.
                                include_execution_data=False),
            tracing_enabled=True,
        )
        Validations.of(role.node.find_child("DefaultPolicy")).acknowledge(cdk.Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="The CloudWatch Logs delivery and X-Ray actions CDK adds for the workflow's logging "
                   "and tracing have no resource-level permissions."))
        return machine

    # -- API --------------------------------------------------------------------

    def _create_api(self) -> Chalice:
        env = {config.JOBS_TABLE: self.table.table_name,
               config.STATE_MACHINE_ARN: self.state_machine.state_machine_arn,
               config.LAUNCH_TEMPLATE_ID: self.launch_template.launch_template_id or "",
               # Each capacity request's launch template version is based on the template's own (CloudFormation's).
               config.LAUNCH_TEMPLATE_VERSION: self.launch_template.default_version_number,
               config.GPU_LAUNCH_TEMPLATE_ID: self.gpu_launch_template.launch_template_id or "",
               config.GPU_LAUNCH_TEMPLATE_VERSION: self.gpu_launch_template.default_version_number,
               config.SUBNET_IDS: cdk.Fn.join(",", list(self.network.subnet_ids)),
               config.STACK_TAG: self.stack_tag,
               config.SWEEPER_RULE: self.sweeper_rule_name,
               config.JOB_LOG_GROUP: self.job_logs.log_group_name,
               config.SECRET_PARAMETER_PREFIX: self.settings.parameter_prefix,
               config.SECRET_NAME_PREFIX: self.settings.secret_prefix,
               config.ACCOUNT_ID: cdk.Aws.ACCOUNT_ID,
               config.ALLOW_CROSS_ACCOUNT: str(self.settings.allow_cross_account).lower()}
        if self.settings.default_instance_types:
            env[config.DEFAULT_INSTANCE_TYPES] = self.settings.default_instance_types
        env.update(self.schedules.environment())
        stage_config = {
            "api_gateway_stage": API_GATEWAY_STAGE,
            "api_gateway_endpoint_type": "REGIONAL",
            "manage_iam_role": False,
            "iam_role_arn": self.api_role.role_arn,
            "autogen_policy": False,
            "environment_variables": env,
            "lambda_memory_size": 256,
            "lambda_timeout": 30,
        }
        with packaging.isolated(Path(cdk.Stage.of(self).outdir), self.region):  # type: ignore[union-attr]
            api = Chalice(self, "Api", source_dir=str(RUNTIME_DIR), stage_config=stage_config)
        packaging.pin_runtime(api, self.settings.lambda_runtime, RUNTIME_DIR)
        self._harden_rest_api(api)
        return api

    def _harden_rest_api(self, api: Chalice) -> None:
        """Access logs and throttling on the API stage (SAM resources cdk-nag cannot see)."""
        rest_api = api.get_resource("RestAPI")
        access_logs = self._create_log_group("ApiAccessLogs")
        rest_api.add_property_override("AccessLogSetting", {
            "DestinationArn": access_logs.log_group_arn,
            "Format": apigw.AccessLogFormat.json_with_standard_fields(
                caller=True, http_method=True, ip=True, protocol=True, request_time=True,
                resource_path=True, response_length=True, status=True, user=True).to_string(),
        })
        rest_api.add_property_override("MethodSettings", [{
            "ResourcePath": "/*", "HttpMethod": "*", "MetricsEnabled": True,
            "ThrottlingRateLimit": self.settings.throttle_rate,
            "ThrottlingBurstLimit": self.settings.throttle_burst,
        }])
        if self.settings.api_gateway_log_role:
            rest_api.node.add_dependency(self._create_api_gateway_log_role())
        self._explain_auth_failures(rest_api)

    def _explain_auth_failures(self, rest_api: cdk.CfnResource) -> None:
        """IAM denials answer in the API's own error shape, naming what to fix.

        API Gateway serves gateway responses from a deployment. As the SAM API's
        ``GatewayResponses`` they enter its definition body, which every
        deployment is made from and whose hash names the deployment, so a change
        redeploys; separate GatewayResponse resources would reach no deployment
        (and the body's overwrite on update would drop them).
        """
        answers = {
            "UNAUTHORIZED": ("401", "UnauthorizedError", "Authorization: sign the request with SigV4 (IAM auth)"),
            "MISSING_AUTHENTICATION_TOKEN": (
                "403", "ForbiddenError", "Authorization: no such route, or the request is not signed with SigV4"),
            "INVALID_SIGNATURE": ("403", "ForbiddenError", "Authorization: the SigV4 signature does not match"),
            "EXPIRED_TOKEN": ("403", "ForbiddenError", "Authorization: the credentials have expired"),
            "ACCESS_DENIED": ("403", "ForbiddenError", "Authorization: this identity may not call this route"),
        }
        rest_api.add_property_override("GatewayResponses", {
            kind: {"StatusCode": status,
                   "ResponseTemplates": {"application/json": json.dumps({"Code": code, "Message": message})}}
            for kind, (status, code, message) in answers.items()})

    def _create_api_gateway_log_role(self) -> apigw.CfnAccount:
        """API Gateway writes access logs only once the region's account setting names a role."""
        role = iam.Role(self, "ApiGatewayLogRole", assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
                        managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(
                            "service-role/AmazonAPIGatewayPushToCloudWatchLogs")])
        account = apigw.CfnAccount(self, "ApiGatewayAccount", cloud_watch_role_arn=role.role_arn)
        # The setting is one per region and other APIs may rely on it: keep both on destroy.
        for resource in (role, account):
            resource.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
        Validations.of(role).acknowledge(cdk.Acknowledgment(
            id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
               "AmazonAPIGatewayPushToCloudWatchLogs]",
            reason="The AWS-maintained policy for API Gateway's account-level logging role; only "
                   "API Gateway can assume the role."))
        return account

    def _create_function_log_groups(self) -> list[logs.LogGroup]:
        """Each function's log group, made here so it has a retention and the role can name it.

        (Chalice's own ``log_retention_in_days`` names the API handler wrongly in
        the template it packages, so it is not used.)
        """
        return [logs.LogGroup(self, f"{fn.node.id}Logs", log_group_name=f"/aws/lambda/{fn.ref}",
                              retention=_RETENTION[self.settings.log_retention_days],
                              removal_policy=cdk.RemovalPolicy.DESTROY)
                for fn in packaging.sam_resources(self.api, "AWS::Serverless::Function")]

    def _grant_api(self) -> iam.Policy:
        log_groups = [group.log_group_arn for group in self._create_function_log_groups()]
        return permissions.attach(self, "ApiPolicy", self.api_role, permissions.api(
            self, table_arn=self.table.table_arn,
            index_names=[i["IndexName"] for i in store.table_definition("")["GlobalSecondaryIndexes"]],
            state_machine_arn=self.state_machine.state_machine_arn,
            state_machine_name=self.state_machine.state_machine_name,
            job_log_group_arn=self.job_logs.log_group_arn, function_log_group_arns=log_groups,
            stack_tag=self.stack_tag, sweeper_rule_name=self.sweeper_rule_name,
            launch_template_arn=self._launch_template_arn(self.launch_template),
            gpu_launch_template_arn=self._launch_template_arn(self.gpu_launch_template),
        ) + permissions.failed_events(self.failed_events.queue_arn) + permissions.schedules(
            self, table_arn=self.table.table_arn, schedule_arn=self.schedules.schedule_arn("*"),
            scheduler_role_arn=self.schedules.role.role_arn,
            dead_letter_queue_arn=self.schedules.dead_letters.queue_arn))

    # -- events, alarms, outputs ------------------------------------------------

    def _create_failed_events_queue(self) -> sqs.Queue:
        """Where events go that no handler could take: undeliverable, or failing after every retry."""
        queue = sqs.Queue(self, "FailedEvents", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
                          retention_period=cdk.Duration.days(14))
        Validations.of(queue).acknowledge(cdk.Acknowledgment(
            id="AwsSolutions-SQS3",
            reason="This queue is itself the dead-letter queue of the EventBridge targets and of the "
                   "handlers' asynchronous invocations; an alarm watches it."))
        return queue

    def event_handlers(self) -> dict[str, dict[str, Any]]:
        """Each plain Lambda function the runtime may define, and the EventBridge rule that triggers it."""
        return {
            "on_execution_ended": {
                "description": "A job execution ended FAILED, TIMED_OUT or ABORTED: clean up after it",
                "event_pattern": events.EventPattern(
                    source=["aws.states"], detail_type=["Step Functions Execution Status Change"],
                    detail={"stateMachineArn": [self.state_machine.state_machine_arn],
                            "status": ["FAILED", "TIMED_OUT", "ABORTED"]}),
            },
            "on_spot_interruption": {
                "description": "A Spot instance got its two-minute interruption warning",
                "event_pattern": events.EventPattern(
                    source=["aws.ec2"], detail_type=["EC2 Spot Instance Interruption Warning"]),
            },
            "sweeper": {
                "description": "While jobs are in flight: terminate leftover job instances, reconcile "
                               "unfinished jobs (the sweeper turns this rule off when idle)",
                "schedule": events.Schedule.rate(cdk.Duration.minutes(5)),
                "rule_name": self.sweeper_rule_name,
            },
        }

    def stream_handlers(self) -> dict[str, str]:
        """Each plain Lambda function the runtime defines for the job table's stream, and why."""
        return {"on_job_change": "Publish each job status change to EventBridge; record prices and costs"}

    def _wire_event_handlers(self) -> dict[str, events.Rule]:
        """One rule per handler function Chalice packaged; a function nothing triggers is an error."""
        handlers = {to_cfn_resource_name(name): (name, rule) for name, rule in self.event_handlers().items()}
        streamed = {to_cfn_resource_name(name) for name in self.stream_handlers()}
        rules = {}
        for function in packaging.sam_resources(self.api, "AWS::Serverless::Function"):
            logical_id = function.node.id
            if logical_id == API_HANDLER:
                continue
            if logical_id in streamed:
                self._read_job_table_stream(logical_id, function.get_att("Arn").to_string())
                continue
            if logical_id == to_cfn_resource_name(SCHEDULE_HANDLER):
                continue  # EventBridge Scheduler invokes it (_wire_schedules)
            if logical_id not in handlers:
                raise ValueError(f"runtime/app.py defines the Lambda function {logical_id}, which no "
                                 "event triggers: add it to JobSchedulerStack.event_handlers")
            name, props = handlers[logical_id]
            arn = function.get_att("Arn").to_string()
            rule = events.Rule(self, f"{logical_id}Rule", targets=[packaging.FunctionTarget(
                arn, dead_letter_queue_arn=self.failed_events.queue_arn,
                retry_attempts=EVENT_DELIVERY_ATTEMPTS, max_event_age=EVENT_MAX_AGE)], **props)
            lambda_.CfnPermission(self, f"{logical_id}Invoke", action="lambda:InvokeFunction",
                                  function_name=arn, principal="events.amazonaws.com",
                                  source_arn=rule.rule_arn)
            # The first trigger must not find the function without its permissions.
            rule.node.add_dependency(self.api_policy)
            self._keep_failed_events(logical_id, function, rule)
            rules[name] = rule
        return rules

    def _keep_failed_events(self, logical_id: str, function: cdk.CfnResource, rule: events.Rule) -> None:
        """Both ways an event can be lost end in the queue.

        EventBridge invokes Lambda asynchronously: its retries and dead-letter
        queue cover only delivery. Once Lambda has accepted the event, Lambda
        retries a failing handler, then sends the event to the on-failure
        destination, as the function's role.
        """
        queue = self.failed_events
        queue.add_to_resource_policy(iam.PolicyStatement(
            sid=f"Undelivered{logical_id}", principals=[iam.ServicePrincipal("events.amazonaws.com")],
            actions=["sqs:SendMessage"], resources=[queue.queue_arn],
            conditions={"ArnEquals": {"aws:SourceArn": rule.rule_arn}}))
        invoke_config = lambda_.CfnEventInvokeConfig(
            self, f"{logical_id}Failures", function_name=function.ref, qualifier="$LATEST",
            maximum_retry_attempts=EVENT_HANDLER_RETRIES,
            maximum_event_age_in_seconds=int(EVENT_MAX_AGE.to_seconds()),
            destination_config=lambda_.CfnEventInvokeConfig.DestinationConfigProperty(
                on_failure=lambda_.CfnEventInvokeConfig.OnFailureProperty(destination=queue.queue_arn)))
        # Lambda checks that the role may send to the destination when the configuration is created.
        invoke_config.node.add_dependency(self.api_policy)

    def _read_job_table_stream(self, logical_id: str, function_arn: str) -> lambda_.CfnEventSourceMapping:
        """The job table's stream drives the function, in order per job, retried until it succeeds or ages out."""
        mapping = lambda_.CfnEventSourceMapping(
            self, f"{logical_id}Stream", function_name=function_arn,
            event_source_arn=self.table.table_stream_arn, starting_position="LATEST", batch_size=100,
            maximum_batching_window_in_seconds=1, bisect_batch_on_function_error=True,
            maximum_retry_attempts=10, maximum_record_age_in_seconds=6 * 3600)
        # Lambda checks the role's stream permissions when the mapping is created.
        mapping.node.add_dependency(self.api_policy)
        return mapping

    def _wire_schedules(self) -> None:
        """EventBridge Scheduler invokes on_schedule (and only it); an alarm watches the firings' dead letters."""
        (handler,) = [f for f in packaging.sam_resources(self.api, "AWS::Serverless::Function")
                      if f.node.id == to_cfn_resource_name(SCHEDULE_HANDLER)]
        (api_handler,) = [f for f in packaging.sam_resources(self.api, "AWS::Serverless::Function")
                          if f.node.id == API_HANDLER]
        self.schedules.connect(handler, api_handler, after=self.api_policy)
        alarm = self.schedules.alarm()
        if self.settings.alarm_topic_arn:
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(
                sns.Topic.from_topic_arn(self, "ScheduleAlarmTopic", self.settings.alarm_topic_arn)))
        self.alarms.append(alarm)

    def _create_alarms(self) -> list[cloudwatch.Alarm]:
        """Alarms on what needs a person: a failed execution, an event no handler could take."""
        period = cdk.Duration.minutes(5)
        alarms = [
            cloudwatch.Alarm(
                self, "FailedExecutions",
                alarm_description="A job execution failed: its clean-up could not finish (see the execution "
                                  "in the Step Functions console)",
                metric=self.state_machine.metric_failed(period=period, statistic="Sum"),
                threshold=1, evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING),
            cloudwatch.Alarm(
                self, "FailedEventsWaiting",
                alarm_description="An EventBridge event (Spot interruption, execution end, sweep) could not be "
                                  "handled after every retry: read it in the FailedEvents queue and the "
                                  "handler's log, then act on it by hand",
                metric=self.failed_events.metric_approximate_number_of_messages_visible(
                    period=period, statistic="Maximum"),
                threshold=1, evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING),
        ]
        if self.settings.alarm_topic_arn:
            topic = sns.Topic.from_topic_arn(self, "AlarmTopic", self.settings.alarm_topic_arn)
            for alarm in alarms:
                alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
        return alarms

    def _create_outputs(self) -> None:
        region = cdk.Aws.REGION
        outputs = {
            "ApiUrl": self.api.sam_template.get_output("EndpointURL").value,
            "TableName": self.table.table_name,
            "StateMachineArn": self.state_machine.state_machine_arn,
            "JobLogGroupName": self.job_logs.log_group_name,
            "FailedEventsQueueUrl": self.failed_events.queue_url,
            "ExecutionsConsoleUrl": f"https://{region}.console.aws.amazon.com/states/home?region={region}"
                                    f"#/statemachines/view/{self.state_machine.state_machine_arn}",
        }
        for name, value in outputs.items():
            cdk.CfnOutput(self, name, value=value)


_DDB_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER,
              "B": dynamodb.AttributeType.BINARY}
_RETENTION = {1: logs.RetentionDays.ONE_DAY, 7: logs.RetentionDays.ONE_WEEK, 14: logs.RetentionDays.TWO_WEEKS,
              30: logs.RetentionDays.ONE_MONTH, 90: logs.RetentionDays.THREE_MONTHS,
              180: logs.RetentionDays.SIX_MONTHS, 365: logs.RetentionDays.ONE_YEAR}


def _coerce(value: Any, kind: type) -> Any:
    """A context value (a string on the command line) as the setting's type."""
    if kind is bool and isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return kind(value)
