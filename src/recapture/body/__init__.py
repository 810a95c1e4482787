"""Body knowledge: keypoints, parts, skeleton graph, heatmaps and layout edits."""
