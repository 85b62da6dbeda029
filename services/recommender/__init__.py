"""The recommender service: Resources chosen for each employee, in their language, with the reason shown."""
