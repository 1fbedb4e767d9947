"""desired"""
