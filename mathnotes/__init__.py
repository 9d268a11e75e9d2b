"""Math documents rewritten as SwallowMath-style learning notes; non-English math translated to English first.

Built on rephrase's machinery by registration, not by copying its loop:
- tasks.py registers the "learning_note" and "translate" tasks in rephrase.prompts.TASKS (prompts.py holds the
  prompts: SwallowMath's three steps, free note or Task Description / Approach / Solution Steps / Final Answer);
- checks.py registers math-aware checks in rephrase.verify.CHECKS (numbers, formulas, final answer, structure,
  English), using normalize.py (LaTeX / number normaliser, final-answer extraction and comparison);
- detect.py detects language (langid), math content and boilerplate; routing.py decides per document;
- stage.py runs rephrase's Rewriter for both tasks inside rephrase's RewriteStage; run.py uses rephrase's
  driver (resumable shards, rejects, stats); spec.py is the job spec; cli.py the `k2forge mathnotes` group.
"""
