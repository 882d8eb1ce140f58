"""What suites share: the LM backbone, the budgeted training loop and samplers, pretrained
models, prefill costs, official rows."""
