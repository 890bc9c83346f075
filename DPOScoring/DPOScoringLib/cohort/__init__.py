"""Statistics over a cohort table (`dpo-score cohort`)."""
