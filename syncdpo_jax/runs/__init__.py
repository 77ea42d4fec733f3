"""Run modes that use a trained model on the training mesh: evaluation (`evaluate`), sampling
(`sampling`), ranked DPO pairs (`pairs`), the sampler-free sync probe (`probe`), and the generation
they share (`generate`). They build on train/ (checkpoints, steps); train/ reaches them only lazily
(the loop's periodic eval, the ranked-pair source).
"""
