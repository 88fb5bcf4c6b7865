"""Models: the step-1 embedding classifier, the step-2/3 generator, and step 3's discriminators."""
