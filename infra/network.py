"""Where job instances run: subnets and a security group that cost nothing while idle.

By default the stack makes its own VPC with one public subnet in every
Availability Zone and no NAT gateway (a NAT gateway is billed by the hour even
when no job runs). Instances reach the internet through the internet gateway,
which is free; the security group admits no inbound traffic at all.

Existing subnets can be used instead, given as context values::

    cdk deploy -c vpcId=vpc-0123 -c subnetIds=subnet-aaa,subnet-bbb
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import Validations
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

# Enough for every Availability Zone of any region; an environment-agnostic
# synth (no account known) falls back to the two AZs CloudFormation resolves.
ALL_AZS = 32


@dataclass(frozen=True)
class NetworkSettings:
    """Context values that choose the network: none means a new VPC."""

    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()

    @classmethod
    def from_context(cls, scope: Construct) -> NetworkSettings:
        """Read ``vpcId`` and ``subnetIds`` (comma-separated or a list) from the CDK context."""
        raw = scope.node.try_get_context("subnetIds") or ()
        subnets = raw.split(",") if isinstance(raw, str) else raw
        settings = cls(scope.node.try_get_context("vpcId") or None,
                       tuple(s.strip() for s in subnets if s.strip()))
        if bool(settings.vpc_id) != bool(settings.subnet_ids):
            raise ValueError("context: give both vpcId and subnetIds, or neither for a new VPC")
        return settings


class Network(Construct):
    """The subnets jobs launch into and the security group they wear."""

    def __init__(self, scope: Construct, construct_id: str, settings: NetworkSettings) -> None:
        super().__init__(scope, construct_id)
        if settings.vpc_id:
            self.vpc = ec2.Vpc.from_vpc_attributes(
                self, "Vpc", vpc_id=settings.vpc_id,
                availability_zones=cdk.Stack.of(self).availability_zones)
            self.subnet_ids: Sequence[str] = list(settings.subnet_ids)
        else:
            self.vpc = self._create_vpc()
            self.subnet_ids = [s.subnet_id for s in self.vpc.public_subnets]
        self.security_group = ec2.SecurityGroup(
            self, "JobInstances", vpc=self.vpc, allow_all_outbound=True,
            description="jobscheduler job instances: no inbound traffic; outbound for images and the API")

    def _create_vpc(self) -> ec2.Vpc:
        vpc = ec2.Vpc(
            self, "Vpc",
            max_azs=ALL_AZS,
            nat_gateways=0,
            subnet_configuration=[ec2.SubnetConfiguration(
                name="Jobs", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=20)],
            # Nothing runs in the default security group (instances get their own
            # group), so its rules are left alone rather than adding a custom
            # resource Lambda function just to empty them.
            restrict_default_security_group=False,
        )
        Validations.of(vpc).acknowledge(cdk.Acknowledgment(
            id="AwsSolutions-VPC7",
            reason="Flow logs are billed per GB ingested; the VPC holds only short-lived job "
                   "instances with no inbound access. Enable them per account if your policy needs them."))
        return vpc
