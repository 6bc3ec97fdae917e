"""Clustering of the embedded logos: a FAISS kNN graph → UMAP layouts → HDBSCAN / KMeans,
near-duplicate groups, quality against known groups, and outputs people can look at
(CSV/Parquet, one folder per cluster, sample grids, a heatmap, a 2-D map, an HTML report).

One role per module: ``params`` (settings), ``vectors`` (descriptors and metadata in),
``graph`` (kNN), ``layout`` (UMAP), ``methods`` (HDBSCAN, KMeans, duplicates), ``quality``
(ARI/NMI/purity, silhouette), ``run`` (the computation, one artifact), ``outputs`` (tables and
folders), ``pictures`` (PNGs), ``report`` (the HTML page).
"""
