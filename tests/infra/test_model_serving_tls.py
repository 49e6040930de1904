"""The GPU model server's endpoint is HTTPS under its own name, or explicitly plain HTTP.

Every request to it carries the server's bearer key (VLLM_API_KEY), so the default is TLS on
the internal ALB; ``-c gpuAllowPlaintext=true`` is the only way back to port 80.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import pytest
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk.assertions import Annotations, Match
from infra.config import GpuSettings, settings_for
from infra.stacks.model_serving import HTTPS_PORT, TLS_POLICY, check_tls

from astromesh.models._http import shared_ssl_context

pytestmark = pytest.mark.infra

NO_TLS = {"gpuDomainName": None, "gpuCertificateArn": None}


def _one(resources: dict[str, Any]) -> dict[str, Any]:
    assert len(resources) == 1, list(resources)
    return next(iter(resources.values()))


def _alb_ingress(synthesized: Any) -> list[dict[str, Any]]:
    """Every ingress rule of the ALB's security group, inline or separate."""
    template = synthesized.templates["model_serving"]["Resources"]
    (alb_sg,) = (
        logical
        for logical, resource in template.items()
        if resource["Type"] == "AWS::EC2::SecurityGroup"
        and resource["Properties"]["GroupDescription"] == "Model server ALB: functions only"
    )
    rules = list(template[alb_sg]["Properties"].get("SecurityGroupIngress", []))
    rules += [
        resource["Properties"]
        for resource in template.values()
        if resource["Type"] == "AWS::EC2::SecurityGroupIngress"
        and resource["Properties"]["GroupId"] == {"Fn::GetAtt": [alb_sg, "GroupId"]}
    ]
    return rules


# -- TLS, the default --------------------------------------------------------------------------


def test_https_listener_with_the_certificate_and_a_tls13_policy(prod):
    gpu = prod.stacks.settings.gpu
    listener = _one(prod.resources("model_serving", "AWS::ElasticLoadBalancingV2::Listener"))
    properties = listener["Properties"]
    assert properties["Port"] == HTTPS_PORT and properties["Protocol"] == "HTTPS"
    assert properties["Certificates"] == [{"CertificateArn": gpu.certificate_arn}]
    assert TLS_POLICY is elbv2.SslPolicy.TLS13_13
    assert properties["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-3-2021-06"  # TLS 1.3 only


def test_no_plain_http_listener(prod):
    listeners = prod.resources("model_serving", "AWS::ElasticLoadBalancingV2::Listener")
    assert [each["Properties"]["Port"] for each in listeners.values()] == [443]
    assert "HTTP" not in {each["Properties"]["Protocol"] for each in listeners.values()}


def test_alias_record_in_a_private_zone_of_the_vpc(prod):
    zone = _one(prod.resources("model_serving", "AWS::Route53::HostedZone"))["Properties"]
    assert zone["Name"] == "models.internal.example.com."  # the name only, not its parent
    (association,) = zone["VPCs"]
    vpc = prod.stacks.network.get_logical_id(prod.stacks.network.vpc.node.default_child)
    assert f"ExportsOutputRef{vpc}" in association["VPCId"]["Fn::ImportValue"]
    record = _one(prod.resources("model_serving", "AWS::Route53::RecordSet"))["Properties"]
    assert record["Name"] == "models.internal.example.com."
    assert record["Type"] == "A"
    (zone_id,) = prod.resources("model_serving", "AWS::Route53::HostedZone")
    assert record["HostedZoneId"] == {"Ref": zone_id}
    (alb,) = prod.resources("model_serving", "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert record["AliasTarget"]["DNSName"]["Fn::Join"][1][1] == {"Fn::GetAtt": [alb, "DNSName"]}
    assert record["AliasTarget"]["HostedZoneId"] == {"Fn::GetAtt": [alb, "CanonicalHostedZoneID"]}


def test_the_published_endpoint_is_https_on_the_name(prod):
    parameter = _one(prod.resources("model_serving", "AWS::SSM::Parameter"))["Properties"]
    assert parameter["Name"] == "/astromesh/prod/model-serving/endpoint"
    assert parameter["Value"] == "https://models.internal.example.com/v1"
    assert prod.stacks.model_serving.endpoint == parameter["Value"]


def test_the_alb_admits_443_from_the_functions_only(prod):
    (rule,) = _alb_ingress(prod)
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 443, 443)
    assert "CidrIp" not in rule and "CidrIpv6" not in rule
    functions_sg = prod.stacks.network.get_logical_id(
        prod.stacks.network.functions_sg.node.default_child
    )
    assert functions_sg in json.dumps(rule["SourceSecurityGroupId"])


def test_an_existing_private_zone_gets_only_the_record(synthesize):
    synthesized = synthesize("prod", {"gpuHostedZoneId": "Z0123456789ABCDEFGHIJ"})
    assert not synthesized.resources("model_serving", "AWS::Route53::HostedZone")
    record = _one(synthesized.resources("model_serving", "AWS::Route53::RecordSet"))
    assert record["Properties"]["HostedZoneId"] == "Z0123456789ABCDEFGHIJ"
    assert record["Properties"]["Name"] == "models.internal.example.com."


# -- secure by default -------------------------------------------------------------------------


def test_a_gpu_stage_without_certificate_and_name_does_not_synthesize(synthesize):
    with pytest.raises(ValueError, match=r"gpuDomainName=.*gpuCertificateArn=") as raised:
        synthesize("prod", NO_TLS)
    assert "gpuAllowPlaintext=true" in str(raised.value)
    with pytest.raises(ValueError, match=r"missing: gpuCertificateArn\)"):
        check_tls(GpuSettings(domain_name="models.internal.example.com"), "prod")


def test_plaintext_is_an_explicit_opt_in_with_a_warning(synthesize):
    synthesized = synthesize("prod", {**NO_TLS, "gpuAllowPlaintext": "true"})
    listener = _one(synthesized.resources("model_serving", "AWS::ElasticLoadBalancingV2::Listener"))
    assert (listener["Properties"]["Port"], listener["Properties"]["Protocol"]) == (80, "HTTP")
    assert not synthesized.resources("model_serving", "AWS::Route53::RecordSet")
    (rule,) = _alb_ingress(synthesized)
    assert (rule["FromPort"], rule["ToPort"]) == (80, 80)
    parameter = _one(synthesized.resources("model_serving", "AWS::SSM::Parameter"))
    assert json.dumps(parameter["Properties"]["Value"]).startswith('{"Fn::Join": ["", ["http://')
    Annotations.from_stack(synthesized.stacks.model_serving).has_warning(
        "*", Match.string_like_regexp("gpuAllowPlaintext: .* clear text")
    )


def test_the_context_keys_reach_the_gpu_settings():
    gpu = settings_for(
        "dev",
        {
            "gpu": "true",
            "gpuDomainName": "models.internal.example.com",
            "gpuCertificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/x",
            "gpuHostedZoneId": "Z0123456789ABCDEFGHIJ",
            "gpuAllowPlaintext": "false",
        },
    ).gpu
    assert gpu.domain_name == "models.internal.example.com"
    assert gpu.certificate_arn == "arn:aws:acm:eu-west-1:123456789012:certificate/x"
    assert gpu.hosted_zone_id == "Z0123456789ABCDEFGHIJ"
    assert gpu.allow_plaintext is False
    assert check_tls(gpu, "dev") is True
    assert settings_for("prod", {"gpuAllowPlaintext": "true"}).gpu.allow_plaintext is True


def test_names_and_arns_that_cannot_work_are_refused():
    arn = "arn:aws:acm:eu-west-1:123456789012:certificate/x"
    with pytest.raises(ValueError, match="not a DNS name"):
        check_tls(GpuSettings(domain_name="models", certificate_arn=arn), "prod")
    apex = GpuSettings(domain_name="example.com", certificate_arn=arn)
    assert check_tls(apex, "prod") is True
    with pytest.raises(ValueError, match="ACM certificate ARN"):
        check_tls(GpuSettings(domain_name="models.internal.example.com",
                              certificate_arn="models-cert"), "prod")  # fmt: skip


# -- the client side ---------------------------------------------------------------------------


def test_the_providers_verify_the_certificate_against_amazons_roots():
    """ACM's public certificates chain to Amazon Root CA 1-4: the vllm / openai_compat
    providers' shared context (httpx's, with certifi's bundle) trusts them and checks the
    name, so ``https://<gpuDomainName>/v1`` needs nothing more on the functions."""
    context = shared_ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    subjects = {
        value
        for cert in context.get_ca_certs()
        for rdn in cert["subject"]
        for key, value in rdn
        if key == "commonName"
    }
    assert {"Amazon Root CA 1", "Amazon Root CA 3"} <= subjects
