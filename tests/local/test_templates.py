"""CloudFormation's intrinsic functions as the emulation resolves them, on a small assembly
written here (the real templates are read end to end by the other tests of this package)."""

from __future__ import annotations

import json
from pathlib import Path

from astromesh.local.templates import Assembly, Resolver, Unresolved, is_unresolved


def _assembly(tmp_path: Path, environment: str) -> Assembly:
    data = {
        "Resources": {
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"FunctionName": "f-api"}},
            "Proxy": {"Type": "AWS::RDS::DBProxy", "Properties": {}},
        },
        "Outputs": {
            "Arn": {"Value": {"Fn::GetAtt": ["Fn", "Arn"]}, "Export": {"Name": "data:FnArn"}}
        },
        "Conditions": {"IsDev": {"Fn::Equals": ["dev", "dev"]}},
    }
    (tmp_path / "astromesh-dev-data.template.json").write_text(json.dumps(data))
    manifest = {"artifacts": {"astromesh-dev-data": {
        "type": "aws:cloudformation:stack", "environment": environment,
        "properties": {"templateFile": "astromesh-dev-data.template.json"}}}}  # fmt: skip
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return Assembly(tmp_path, "dev")


def test_intrinsics_resolve_for_the_account_and_region(tmp_path):
    assembly = _assembly(tmp_path, "aws://unknown-account/unknown-region")
    assert assembly.environment == (None, None)
    resolver = Resolver(assembly, assembly.stack("data"), "123456789012", "eu-west-1")
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:f-api"
    assert resolver.resolve({"Fn::ImportValue": "data:FnArn"}) == arn
    assert resolver.resolve({"Fn::Sub": "${AWS::Region}/${Fn}/${Fn.Arn}/${!Literal}"}) == (
        f"eu-west-1/f-api/{arn}/${{Literal}}"
    )
    joined = {"Fn::Join": [":", [{"Ref": "AWS::Partition"}, {"Ref": "AWS::AccountId"}]]}
    assert resolver.resolve(joined) == "aws:123456789012"
    split = {"Fn::Select": [1, {"Fn::Split": ["/", "a/b/c"]}]}
    assert resolver.resolve(split) == "b"
    assert resolver.resolve({"Fn::If": ["IsDev", "yes", "no"]}) == "yes"


def test_what_only_an_account_has_is_named_as_unresolved(tmp_path):
    assembly = _assembly(tmp_path, "aws://111122223333/ap-southeast-2")
    assert assembly.environment == ("111122223333", "ap-southeast-2")
    resolver = Resolver(assembly, assembly.stack("data"), "111122223333", "ap-southeast-2")
    endpoint = resolver.resolve({"Fn::GetAtt": ["Proxy", "Endpoint"]})
    assert endpoint == Unresolved("Proxy.Endpoint")
    dsn = resolver.text(
        {"Fn::Join": ["", ["postgresql://u@", {"Fn::GetAtt": ["Proxy", "Endpoint"]}]]}
    )
    assert dsn == "postgresql://u@<unresolved:Proxy.Endpoint>" and is_unresolved(dsn)
    assert is_unresolved(resolver.resolve({"Fn::ImportValue": "other:Missing"}))
