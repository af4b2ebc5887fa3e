## peers_lme4.R -- times lme4::glmer on the rows bench_glmm wrote, for the
## hierarchical-model speed ratio in bench/run.sh (section 7).
##
##   Rscript bench/peers_lme4.R DATA.csv [ri|slope|all]
##
## DATA.csv: death_30d, hospital_id, then the 27 regressors (the design of
## bench/glmm.rs without its constant). Default glmer settings (nAGQ = 1,
## bobyqa then Nelder-Mead), the same model as healthgap's: a random hospital
## intercept, and for `slope` a correlated random slope on `black`.
## Prints one line per model: RESULT <task> <elapsed seconds> (...), the time
## of glmer() alone (reading the CSV excluded).

suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
path <- args[1]
which <- if (length(args) > 1) args[2] else "all"
bd <- read.csv(path)
covs <- setdiff(names(bd), c("death_30d", "hospital_id"))
tasks <- list(
  glmm_random_intercept = reformulate(c(covs, "(1 | hospital_id)"), response = "death_30d"),
  glmm_random_slope = reformulate(c(covs, "(1 + black | hospital_id)"), response = "death_30d")
)
if (which == "ri") tasks <- tasks[1]
if (which == "slope") tasks <- tasks[2]
for (task in names(tasks)) {
  tm <- system.time(fit <- suppressMessages(suppressWarnings(
    glmer(tasks[[task]], data = bd, family = binomial))))
  cat(sprintf("RESULT %s %.4f s (black: %.6f; theta %s; -2logLik %.6f; %d evaluations; lme4 %s)\n",
              task, tm[["elapsed"]], fixef(fit)[["black"]],
              paste(sprintf("%.6f", getME(fit, "theta")), collapse = " "),
              -2 * c(logLik(fit)), fit@optinfo$feval, as.character(packageVersion("lme4"))))
}
