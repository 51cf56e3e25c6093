"""Validates `unicc k8s` output (multi-document YAML on stdin) offline: Secret and Service against
the Kubernetes schemas (kubernetes-validate, strict), PyTorchJob against Kubeflow's v1 models,
JobSet's spec against the v1alpha2 models. Prints "VALID <kind>" per document, or raises."""

import sys

import kubernetes_validate
import yaml


def same_back(kind, doc, back):
    # The generated models drop fields they do not know instead of failing: a round trip that
    # loses anything means the manifest has a field the schema lacks.
    if back != doc:
        raise ValueError("%s: fields the schema does not have, or of the wrong form:\n%r\n!=\n%r" % (kind, doc, back))


def pytorchjob(doc):
    from kubeflow.training import ApiClient

    client = ApiClient()
    obj = client._ApiClient__deserialize(doc, "KubeflowOrgV1PyTorchJob")  # type-checks every field
    same_back("PyTorchJob", doc, client.sanitize_for_serialization(obj))


def jobset(doc):
    from kubeflow_trainer_api.models import JobsetV1alpha2JobSetSpec

    if doc["apiVersion"] != "jobset.x-k8s.io/v1alpha2":
        raise ValueError("JobSet: apiVersion %s" % doc["apiVersion"])
    spec = JobsetV1alpha2JobSetSpec.from_dict(doc["spec"])  # pydantic: wrong types raise
    same_back("JobSet", doc["spec"], spec.to_dict())


def main():
    for doc in yaml.safe_load_all(sys.stdin):
        kind = doc["kind"]
        if kind in ("Secret", "Service"):
            kubernetes_validate.validate(doc, "1.30", strict=True)
        elif kind == "PyTorchJob":
            pytorchjob(doc)
        elif kind == "JobSet":
            jobset(doc)
        else:
            raise ValueError("unexpected kind %s" % kind)
        print("VALID", kind)


if __name__ == "__main__":
    main()
