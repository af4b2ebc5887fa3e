-- healthgap-sql snapshot: bigquery

-- attrition
SELECT
  COUNT(*) AS `n0`,
  COUNT(CASE WHEN `age` >= 18 THEN 1 END) AS `n1`,
  COUNT(CASE WHEN `age` >= 18 AND (`status` <> 'emergent' AND (`age` < 80 OR `female` = 1)) THEN 1 END) AS `n2`,
  COUNT(CASE WHEN `age` >= 18 AND (`status` <> 'emergent' AND (`age` < 80 OR `female` = 1)) AND `race` IN ('White', 'Black') THEN 1 END) AS `n3`
FROM `cdm`.`cabg_cohort`;

-- pass 1: means, query 1 of 1
WITH hg_cohort AS (
  SELECT
    `race` AS `grp`,
    `hospital_id` AS `hosp`,
    `hospital_id` AS `clus`,
    CAST(`discharge_weight` AS FLOAT64) AS `wt`,
    CAST(`death_30d` AS FLOAT64) AS `y1`,
    CAST(`age` AS FLOAT64) AS `x1`,
    CAST(`female` AS FLOAT64) AS `x2`,
    CAST(`adi` AS FLOAT64) AS `x3`,
    CAST(CASE WHEN `insurance` IS NULL THEN NULL WHEN `insurance` = 'medicare' THEN 1 ELSE 0 END AS FLOAT64) AS `x4`,
    CAST(CASE WHEN `insurance` IS NULL THEN NULL WHEN `insurance` = 'medicaid' THEN 1 ELSE 0 END AS FLOAT64) AS `x5`
  FROM `cdm`.`cabg_cohort`
  WHERE `age` >= 18
    AND (`status` <> 'emergent' AND (`age` < 80 OR `female` = 1))
    AND `race` IN ('White', 'Black')
)
SELECT
  COUNT(*) AS `n`,
  SUM(`wt`) AS `sw`,
  SUM(`wt` * `x1`) AS `s_x1`,
  SUM(`wt` * `x2`) AS `s_x2`,
  SUM(`wt` * `x3`) AS `s_x3`,
  SUM(`wt` * `x4`) AS `s_x4`,
  SUM(`wt` * `x5`) AS `s_x5`,
  SUM(`wt` * `y1`) AS `s_y1`
FROM hg_cohort
WHERE `x1` IS NOT NULL
  AND `x2` IS NOT NULL
  AND `x3` IS NOT NULL
  AND `x4` IS NOT NULL
  AND `x5` IS NOT NULL
  AND `y1` IS NOT NULL
  AND `wt` IS NOT NULL;

-- pass 2: centred moments, query 1 of 2
WITH hg_cohort AS (
  SELECT
    `race` AS `grp`,
    `hospital_id` AS `hosp`,
    `hospital_id` AS `clus`,
    CAST(`discharge_weight` AS FLOAT64) AS `wt`,
    CAST(`death_30d` AS FLOAT64) AS `y1`,
    CAST(`age` AS FLOAT64) AS `x1`,
    CAST(`female` AS FLOAT64) AS `x2`,
    CAST(`adi` AS FLOAT64) AS `x3`,
    CAST(CASE WHEN `insurance` IS NULL THEN NULL WHEN `insurance` = 'medicare' THEN 1 ELSE 0 END AS FLOAT64) AS `x4`,
    CAST(CASE WHEN `insurance` IS NULL THEN NULL WHEN `insurance` = 'medicaid' THEN 1 ELSE 0 END AS FLOAT64) AS `x5`
  FROM `cdm`.`cabg_cohort`
  WHERE `age` >= 18
    AND (`status` <> 'emergent' AND (`age` < 80 OR `female` = 1))
    AND `race` IN ('White', 'Black')
)
SELECT
  `grp`,
  `hosp`,
  COUNT(*) AS `n`,
  SUM(`wt`) AS `sw`,
  SUM(`wt` * (`x1` - 66.25)) AS `s_x1`,
  SUM(`wt` * (`x2` - 0.375)) AS `s_x2`,
  SUM(`wt` * (`x3` - (-0.0015))) AS `s_x3`,
  SUM(`wt` * (`x4` - 0.5)) AS `s_x4`,
  SUM(`wt` * (`x5` - 0.125)) AS `s_x5`,
  SUM(`wt` * (`y1` - 0.03125)) AS `s_y1`,
  SUM(`wt` * (`x1` - 66.25) * (`x1` - 66.25)) AS `p_x1_x1`,
  SUM(`wt` * (`x1` - 66.25) * (`x2` - 0.375)) AS `p_x1_x2`,
  SUM(`wt` * (`x1` - 66.25) * (`x3` - (-0.0015))) AS `p_x1_x3`,
  SUM(`wt` * (`x1` - 66.25) * (`x4` - 0.5)) AS `p_x1_x4`,
  SUM(`wt` * (`x1` - 66.25) * (`x5` - 0.125)) AS `p_x1_x5`,
  SUM(`wt` * (`x1` - 66.25) * (`y1` - 0.03125)) AS `p_x1_y1`,
  SUM(`wt` * (`x2` - 0.375) * (`x2` - 0.375)) AS `p_x2_x2`,
  SUM(`wt` * (`x2` - 0.375) * (`x3` - (-0.0015))) AS `p_x2_x3`,
  SUM(`wt` * (`x2` - 0.375) * (`x4` - 0.5)) AS `p_x2_x4`,
  SUM(`wt` * (`x2` - 0.375) * (`x5` - 0.125)) AS `p_x2_x5`
FROM hg_cohort
WHERE `x1` IS NOT NULL
  AND `x2` IS NOT NULL
  AND `x3` IS NOT NULL
  AND `x4` IS NOT NULL
  AND `x5` IS NOT NULL
  AND `y1` IS NOT NULL
  AND `wt` IS NOT NULL
GROUP BY `grp`, `hosp`
ORDER BY `grp`, `hosp`;

-- pass 2: centred moments, query 2 of 2
WITH hg_cohort AS (
  SELECT
    `race` AS `grp`,
    `hospital_id` AS `hosp`,
    `hospital_id` AS `clus`,
    CAST(`discharge_weight` AS FLOAT64) AS `wt`,
    CAST(`death_30d` AS FLOAT64) AS `y1`,
    CAST(`age` AS FLOAT64) AS `x1`,
    CAST(`female` AS FLOAT64) AS `x2`,
    CAST(`adi` AS FLOAT64) AS `x3`,
    CAST(CASE WHEN `insurance` IS NULL THEN NULL WHEN `insurance` = 'medicare' THEN 1 ELSE 0 END AS FLOAT64) AS `x4`,
    CAST(CASE WHEN `insurance` IS NULL THEN NULL WHEN `insurance` = 'medicaid' THEN 1 ELSE 0 END AS FLOAT64) AS `x5`
  FROM `cdm`.`cabg_cohort`
  WHERE `age` >= 18
    AND (`status` <> 'emergent' AND (`age` < 80 OR `female` = 1))
    AND `race` IN ('White', 'Black')
)
SELECT
  `grp`,
  `hosp`,
  SUM(`wt` * (`x2` - 0.375) * (`y1` - 0.03125)) AS `p_x2_y1`,
  SUM(`wt` * (`x3` - (-0.0015)) * (`x3` - (-0.0015))) AS `p_x3_x3`,
  SUM(`wt` * (`x3` - (-0.0015)) * (`x4` - 0.5)) AS `p_x3_x4`,
  SUM(`wt` * (`x3` - (-0.0015)) * (`x5` - 0.125)) AS `p_x3_x5`,
  SUM(`wt` * (`x3` - (-0.0015)) * (`y1` - 0.03125)) AS `p_x3_y1`,
  SUM(`wt` * (`x4` - 0.5) * (`x4` - 0.5)) AS `p_x4_x4`,
  SUM(`wt` * (`x4` - 0.5) * (`x5` - 0.125)) AS `p_x4_x5`,
  SUM(`wt` * (`x4` - 0.5) * (`y1` - 0.03125)) AS `p_x4_y1`,
  SUM(`wt` * (`x5` - 0.125) * (`x5` - 0.125)) AS `p_x5_x5`,
  SUM(`wt` * (`x5` - 0.125) * (`y1` - 0.03125)) AS `p_x5_y1`,
  SUM(`wt` * (`y1` - 0.03125) * (`y1` - 0.03125)) AS `p_y1_y1`
FROM hg_cohort
WHERE `x1` IS NOT NULL
  AND `x2` IS NOT NULL
  AND `x3` IS NOT NULL
  AND `x4` IS NOT NULL
  AND `x5` IS NOT NULL
  AND `y1` IS NOT NULL
  AND `wt` IS NOT NULL
GROUP BY `grp`, `hosp`
ORDER BY `grp`, `hosp`;
